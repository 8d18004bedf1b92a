"""Read the code blocks of the README and the docs, and check or run them (the conventions: docs/README.md).

A block is a fenced ```python or ```bash block with a marker comment on the line just above it::

    <!-- snippet: run; sub: OLD => NEW | OLD2 => NEW2 -->

``run`` blocks run in a sandbox with tiny data (:func:`make_sandbox`), the others (``download``, ``gpu``, ``cluster``,
``long``) are parsed, and every tool command in any bash block has its options parsed by the tool's own parser
(:func:`check_command`). Written for this project's docs, not as a general Markdown parser: fences at any indent,
closed by a fence of the same backticks.
"""
import argparse
import ast
import contextlib
import importlib.util
import io
import os
import os.path as osp
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOCS = osp.join(ROOT, 'docs', 'en')
KINDS = ('run', 'download', 'gpu', 'cluster', 'long')
CODE_LANGS = {'python': 'python', 'py': 'python', 'bash': 'bash', 'sh': 'bash', 'shell': 'bash'}
MARKER = re.compile(r'^\s*<!--\s*snippet:\s*(?P<kind>\w+)\s*(?:;\s*sub:\s*(?P<sub>.*?))?\s*-->\s*$')
FENCE = re.compile(r'^(?P<indent>\s*)(?P<fence>`{3,})(?P<info>[^`]*)$')
PLACEHOLDER = re.compile(r'^[A-Z][A-Z0-9_]*(?:\.[a-z]+)?$')  # CONFIG, CHECKPOINT, WORK_DIR, PATH_TO_SIMCLR.pth


@dataclass
class Block:
    """One fenced block of a Markdown file."""
    path: str          # repository-relative file
    line: int          # line of the opening fence (1-based)
    lang: str          # 'python', 'bash', or the raw info word for other blocks
    code: str
    end: int = -1      # index (0-based) of its closing fence line
    kind: str = ''     # marker kind; '' when there is no marker
    subs: list = field(default_factory=list)  # [(old, new)]
    expected: str = None  # a run block's output as the page shows it: a ```text block right after it, no prose between

    @property
    def where(self):
        return f'{self.path}:{self.line}'

    def runnable_code(self):
        """The code with the marker's substitutions applied (each must match, so a stale one is caught)."""
        code = self.code
        for old, new in self.subs:
            if old not in code:
                raise AssertionError(f'{self.where}: substitution {old!r} matches nothing in the block')
            code = code.replace(old, new)
        return code


def doc_files():
    """README.md and every page of the site, repository-relative."""
    pages = sorted(f for f in os.listdir(DOCS) if f.endswith('.md'))
    return ['README.md'] + [f'docs/en/{p}' for p in pages]


def read_blocks(path):
    """Every fenced block of ``path`` (repository-relative), with its marker if it has one."""
    with open(osp.join(ROOT, path), encoding='utf-8') as f:
        lines = f.read().split('\n')
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent, info = m.group('fence'), m.group('indent'), m.group('info').strip()
        start, i = i, i + 1
        body = []
        while i < len(lines) and not re.match(rf'^\s*{fence}\s*$', lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        word = info.split()[0] if info else ''
        block = Block(path, start + 1, CODE_LANGS.get(word, word), '\n'.join(body) + '\n')
        prev = start - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        if block.lang == 'text' and blocks and blocks[-1].kind == 'run' and blocks[-1].end == prev:
            blocks[-1].expected = block.code
        block.end = i - 1  # index of the closing fence
        mm = MARKER.match(lines[prev]) if prev >= 0 else None
        if mm:
            block.kind = mm.group('kind')
            for part in (mm.group('sub') or '').split('|'):
                if part.strip():
                    old, sep, new = part.partition('=>')
                    if not sep:
                        raise AssertionError(f'{block.where}: substitution {part!r} has no "=>"')
                    block.subs.append((old.strip(), new.strip()))
        blocks.append(block)
    return blocks


def code_blocks(path):
    return [b for b in read_blocks(path) if b.lang in ('python', 'bash')]


# --------------------------------------------------------------------------------------------- bash command lines
def bash_commands(code):
    """The simple commands of a bash block as token lists: continuation lines joined, comments dropped, split at
    ``&&``, ``||``, ``;`` and ``|``; leading ``VAR=value`` assignments removed."""
    code = code.replace('\\\n', ' ')
    commands = []
    for line in code.split('\n'):
        lex = shlex.shlex(line, posix=True, punctuation_chars=';&|')
        lex.whitespace_split = True
        lex.commenters = '#'
        current = []
        for tok in lex:
            if tok in (';', '&&', '||', '|', '&'):
                commands.append(current)
                current = []
            else:
                current.append(tok)
        commands.append(current)
    out = []
    for cmd in commands:
        while cmd and re.match(r'^[A-Za-z_][A-Za-z0-9_]*=', cmd[0]):
            cmd = cmd[1:]
        if cmd:
            out.append(cmd)
    return out


class _Parsed(Exception):
    def __init__(self, namespace):
        self.namespace = namespace


def _load_tool(rel):
    name = '_docs_tool_' + re.sub(r'\W', '_', rel)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, rel))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = osp.dirname(osp.join(ROOT, rel))
    sys.path.insert(0, folder)  # as when run as a script: benchmark tools import their neighbours
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.path.remove(folder)
    return module


def parse_tool_args(rel, argv):
    """Parse ``argv`` with the argument parser of the tool ``rel`` (``tools/x.py``) and return the namespace; nothing
    after the parsing runs. Raises AssertionError with argparse's message when the options are wrong."""
    module = _load_tool(rel)
    entry = getattr(module, 'parse_args', None) or getattr(module, 'main', None)
    assert entry is not None, f'{rel} has neither parse_args(argv) nor main(argv)'
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    err = io.StringIO()
    argparse.ArgumentParser.parse_args = parse_then_stop
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            entry(list(argv))
    except _Parsed as p:
        return p.namespace
    except SystemExit:
        raise AssertionError(f'{rel} {shlex.join(argv)}: {err.getvalue().strip()}') from None
    finally:
        argparse.ArgumentParser.parse_args = original
    raise AssertionError(f'{rel}: the tool did not parse its arguments with argparse')


def _is_placeholder(value):
    return value is None or bool(PLACEHOLDER.match(str(value))) or str(value).startswith('$')


def check_cfg_options(config_file, options):
    """Every ``--cfg-options`` key names a setting of the config (its parents at least, where the config has ``None``
    for a dict it fills in): a renamed setting would otherwise be added silently and do nothing."""
    from mmengine.config import Config
    cfg = Config.fromfile(config_file)
    for key in options:
        node, walked = cfg, []
        for part in key.split('.'):
            walked.append(part)
            if node is None:
                break
            if isinstance(node, (list, tuple)):
                assert part.isdigit() and int(part) < len(node), f'{config_file}: no setting {".".join(walked)}'
                node = node[int(part)]
                continue
            assert hasattr(node, 'get'), f'--cfg-options {key}: {".".join(walked[:-1])} is not a dict'
            if part not in node and 'type' in node and _accepts(node['type'], part):
                break  # an argument of the module the dict builds, which the config leaves at its default
            assert part in node, \
                f'--cfg-options {key}: {osp.relpath(config_file, ROOT)} has no setting {".".join(walked)}'
            node = node[part]


def _accepts(type_name, argument):
    """Whether the registered class ``type_name`` (any mmsimclr registry, or its mmpretrain/mmengine parents) takes
    ``argument`` in its constructor."""
    import inspect

    from mmsimclr.utils import register_all_modules
    from mmsimclr.utils.config_check import _registries  # the registries config checks look types up in
    register_all_modules(init_default_scope=False)
    if not isinstance(type_name, str):
        return False
    for reg in _registries():
        cls = reg.get(type_name)
        if cls is not None:
            return argument in inspect.signature(cls).parameters
    return False


def check_train_or_test(tool, argv):
    ns = parse_tool_args(tool, argv)
    config = getattr(ns, 'config', None)
    if config is None or _is_placeholder(config):
        return
    from mmsimclr.utils.config_path import resolve_config
    config_file = resolve_config(config)  # raises ConfigNotFoundError naming it
    if getattr(ns, 'cfg_options', None):
        check_cfg_options(config_file, ns.cfg_options)


def check_command(tokens):
    """Check one command line of a docs bash block; returns a short description of what was checked, or ''."""
    if tokens[0] in ('python', 'python3') or tokens[0].endswith('/python'):
        args = tokens[1:]
        if args[:2] == ['-m', 'mim']:
            return check_mim(args[2:])
        if not args or not args[0].endswith('.py'):
            return ''
        tool, argv = args[0], args[1:]
        assert osp.isfile(osp.join(ROOT, tool)), f'{tool} does not exist'
        if not tool.startswith(('tools/', 'demo/')):
            return tool
        if tool in ('tools/train.py', 'tools/test.py'):
            check_train_or_test(tool, argv)
        else:
            ns = parse_tool_args(tool, argv)
            config = getattr(ns, 'config', None)
            if isinstance(config, str) and config.startswith('configs/'):
                assert osp.isfile(osp.join(ROOT, config)), f'{tool}: {config} does not exist'
        return tool
    if tokens[0] == 'bash' and len(tokens) > 1 and tokens[1].startswith('tools/'):
        script, args = tokens[1], tokens[2:]
        assert osp.isfile(osp.join(ROOT, script)), f'{script} does not exist'
        if script == 'tools/dist_train.sh':
            assert len(args) >= 2, f'{script} takes CONFIG GPUS: {shlex.join(tokens)}'
            check_train_or_test('tools/train.py', [args[0]] + args[2:])
        elif script == 'tools/dist_test.sh':
            assert len(args) >= 3, f'{script} takes CONFIG CHECKPOINT GPUS: {shlex.join(tokens)}'
            check_train_or_test('tools/test.py', args[:2] + args[3:])
        elif script == 'tools/slurm_train.sh':
            assert len(args) >= 3, f'{script} takes PARTITION JOB_NAME CONFIG: {shlex.join(tokens)}'
            rest = args[3:]
            if rest and not rest[0].startswith('--'):
                rest = ['--work-dir', rest[0]] + rest[1:]
            check_train_or_test('tools/train.py', [args[2]] + rest)
        return script
    if tokens[0] == 'mim':
        return check_mim(tokens[1:])
    if tokens[0] == 'make':
        with open(osp.join(ROOT, 'Makefile'), encoding='utf-8') as f:
            targets = set(re.findall(r'^([\w.-]+):', f.read(), flags=re.M))
        for target in (t for t in tokens[1:] if '=' not in t and not t.startswith('-')):
            assert target in targets, f'make {target}: no such target in the Makefile'
        return 'make'
    return ''


def check_mim(args):
    """``mim train|test mmsimclr CONFIG.py ...``: the config is shipped with mmsimclr; ``mim download mmsimclr
    --config NAME``: NAME is in the model zoo."""
    if not args:
        return 'mim'
    if args[0] in ('train', 'test') and len(args) >= 3:
        assert args[1] == 'mmsimclr', f'mim {args[0]} {args[1]}: expected the package mmsimclr'
        from mmsimclr.utils.config_path import resolve_config
        if not _is_placeholder(args[2]):
            resolve_config(args[2])
    if args[0] == 'download' and '--config' in args:
        from mmsimclr.apis import list_models
        name = args[args.index('--config') + 1]
        assert name in list_models(), f'mim download: {name} is not in the model zoo'
    return 'mim'


def check_python(block):
    """Compile; every ``mmsimclr.NAME`` and ``from mmsimclr... import NAME`` exists, and so does every file of a config
    snippet's ``_base_`` list (relative to ``configs/``)."""
    import importlib
    tree = ast.parse(block.code, filename=block.where)
    compile(tree, block.where, 'exec')
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split('.')[0] == 'mmsimclr':
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(f'{node.module}.{alias.name}'), \
                    f'{block.where}: {node.module} has no {alias.name}'
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            bases = ast.literal_eval(node.value)
            for base in [bases] if isinstance(bases, str) else bases:
                assert osp.isfile(osp.join(ROOT, 'configs', base)), f'{block.where}: _base_ {base} does not exist'
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == 'mmsimclr':
            assert hasattr(importlib.import_module('mmsimclr'), node.attr), f'{block.where}: mmsimclr.{node.attr}'


def check_bash(block):
    code = block.runnable_code() if block.kind == 'run' else block.code
    res = subprocess.run(['bash', '-n'], input=code, text=True, capture_output=True)
    assert res.returncode == 0, f'{block.where}: bash -n: {res.stderr}'
    checked = []
    for tokens in bash_commands(block.code):
        try:
            checked.append(check_command(tokens))
        except Exception as e:  # noqa: BLE001 - re-raised with the block's place
            raise AssertionError(f'{block.where}: {shlex.join(tokens)}\n  {e}') from e
    return [c for c in checked if c]


# --------------------------------------------------------------------------------------------------- the sandbox
def make_data(root):
    """The tiny data of the sandbox (docs/README.md lists it)."""
    import numpy as np
    from PIL import Image
    sys.path.insert(0, ROOT)
    from tools.make_tiny_dataset import make_tiny_dataset
    rng = np.random.default_rng(0)

    def picture(w, h):
        img = np.zeros((h, w, 3), np.uint8)
        img[...] = rng.integers(0, 256, 3)
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        img[y0:y0 + h // 3, x0:x0 + w // 3] = rng.integers(0, 256, 3)
        return Image.fromarray(img)

    from tests.conftest import make_mixed_image_folder  # the unit tests' folder as users have them
    make_mixed_image_folder(osp.join(root, 'data', 'my_images'))
    make_tiny_dataset(osp.join(root, 'data', 'cifar10'), classes=4, per_class=8, size=32, seed=1)
    make_tiny_dataset(osp.join(root, 'data', 'tiny'))
    meta = osp.join(root, 'data', 'imagenet', 'meta')  # an ImageNet train list (text only): 10 classes x 200
    os.makedirs(meta)
    names = [[f'n{c:08d}_{i}.JPEG' for i in range(200)] for c in range(10)]
    with open(osp.join(meta, 'train.txt'), 'w') as f:
        f.writelines(f'n{c:08d}/{n} {c}\n' for c in range(10) for n in names[c])
    for pct, per_class in (('1percent', 2), ('10percent', 20)):  # the published lists' form: file names
        with open(osp.join(root, f'{pct}.txt'), 'w') as f:
            f.writelines(f'{n}\n' for c in range(10) for n in names[c][:per_class])
    picture(500, 375).save(osp.join(root, 'bird.JPEG'), quality=90)
    os.makedirs(osp.join(root, 'photos'))
    for i in range(6):
        picture(80, 60).save(osp.join(root, 'photos', f'photo_{i}.jpg'))
    return root


def make_sandbox(data_root, where):
    """A fresh folder laid out as the checkout (configs/, tools/, demo/, mmsimclr/, model_zoo.yml linked), with the tiny
    data copied in."""
    os.makedirs(where, exist_ok=True)
    for name in ('configs', 'tools', 'demo', 'mmsimclr', 'model_zoo.yml', 'resources'):
        os.symlink(osp.join(ROOT, name), osp.join(where, name))
    shutil.copytree(osp.join(data_root, 'data'), osp.join(where, 'data'))
    for name in ('bird.JPEG', '1percent.txt', '10percent.txt'):
        shutil.copy(osp.join(data_root, name), where)
    shutil.copytree(osp.join(data_root, 'photos'), osp.join(where, 'photos'))
    return where


def check_output(block, out):
    """The output shown on the page (``block.expected``) is in ``out``: each of its lines, in order, is found in a line
    of the output, ``...`` standing for any text (a line that is only ``...`` for any lines)."""
    lines = out.splitlines()
    pos = 0
    for want in block.expected.splitlines():
        want = want.strip()
        if not want or want == '...':
            continue
        pattern = re.compile('.*'.join(re.escape(part) for part in want.split('...')))
        while pos < len(lines) and not pattern.search(lines[pos]):
            pos += 1
        assert pos < len(lines), (f'{block.where}: the page shows the output line {want!r}, which the run did not '
                                  f'print (in this order)\n--- output (tail) ---\n{out[-3000:]}')
        pos += 1


def run_block(block, cwd, timeout=300):
    """Run a ``run`` block in ``cwd`` with the test's Python first on PATH; returns the combined output."""
    env = dict(os.environ)
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    env['MMSIMCLR_CACHE'] = osp.join(cwd, '.cache')
    env['MPLBACKEND'] = 'Agg'
    env['CUDA_VISIBLE_DEVICES'] = ''
    env.pop('MMSIMCLR_MIRROR', None)
    env.pop('MMSIMCLR_MODEL_ZOO', None)
    code = block.runnable_code()
    if block.lang == 'python':
        cmd = [sys.executable, '-c', code]
    else:
        cmd = ['bash', '-euo', 'pipefail', '-c', code]
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f'{block.where}: exit status {res.returncode}\n{code}\n--- output (tail) ---\n' \
                                f'{out[-4000:]}'
    if block.expected:
        check_output(block, out)
    return out
