"""The package's module-level imports form a DAG that flows one way: models/datasets/utils at the bottom,
evaluation and engine above them, apis on top (nothing below imports it)."""
import ast
import os
import os.path as osp

import mmsimclr

PACKAGE = osp.dirname(mmsimclr.__file__)
BELOW_APIS = ('models', 'datasets', 'evaluation', 'engine', 'utils')


def module_graph():
    """``{module: {package modules it imports at module level}}`` read with ``ast`` (nothing is imported)."""
    files = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                parts = ['mmsimclr'] + osp.relpath(path, PACKAGE)[:-3].split(os.sep)
                files['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    graph = {}
    for module, path in files.items():
        package = module if path.endswith('__init__.py') else module.rpartition('.')[0]
        deps = set()
        for node in ast.parse(open(path, encoding='utf-8').read()).body:  # module level only
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
                    base = '.'.join(anchor + ([node.module] if node.module else []))
                names = [base] + [f'{base}.{a.name}' for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split('.')
                # importing a.b.c runs a and a.b too (their __init__), except the importer's own parents
                deps.update('.'.join(parts[:i]) for i in range(1, len(parts) + 1))
        graph[module] = {d for d in deps if d in files and d != module and not module.startswith(d + '.')}
    return graph


def find_cycle(graph):
    """One cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 'open':
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_graph_reader_sees_imports_and_cycles():
    graph = module_graph()
    assert 'mmsimclr.registry' in graph['mmsimclr.evaluation.embedding']
    assert 'mmsimclr.evaluation.features' in graph['mmsimclr.apis.inference']
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(module_graph())
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_apis_is_imported_only_from_the_top():
    upward = sorted(f'{m} -> {d}' for m, deps in module_graph().items() for d in deps
                    if d.startswith('mmsimclr.apis') and m.split('.')[1:2] and m.split('.')[1] in BELOW_APIS)
    assert not upward, 'modules below apis import it: ' + ', '.join(upward)
