"""The examples of the README and the docs work: every python/bash block says how it is tested (docs/README.md),
every block is parsed and every tool command in it has its options parsed by the tool's own parser, and the
``run`` blocks of each page run, in order, in a sandbox with tiny data."""
import os.path as osp

import pytest

from .snippets import KINDS, ROOT, check_bash, check_python, code_blocks, doc_files, make_data, make_sandbox, \
    read_blocks, run_block

FILES = doc_files()
RUN_FILES = [f for f in FILES if any(b.kind == 'run' for b in code_blocks(f))]
# a page whose examples start process groups (dist_train.sh CONFIG 2: two gloo processes) runs with the other
# process-group tests, one at a time (tests/conftest.py)
RUN_PARAMS = [pytest.param(f, marks=[pytest.mark.distributed] if any(
    b.kind == 'run' and 'tools/dist_' in b.code for b in code_blocks(f)) else []) for f in RUN_FILES]


def test_the_docs_have_examples_of_each_kind():
    kinds = {b.kind for f in FILES for b in code_blocks(f)}
    assert {'run', 'download', 'long'} <= kinds
    assert len(RUN_FILES) >= 4
    assert sum(1 for f in FILES for b in code_blocks(f) if b.expected) >= 3  # outputs the pages show are checked


@pytest.mark.parametrize('path', FILES)
def test_every_block_says_how_it_is_tested(path):
    problems = []
    for b in read_blocks(path):
        if not b.lang:
            problems.append(f'{b.where}: a fence without a language (```text for output)')
        elif b.lang in ('python', 'bash') and b.kind not in KINDS:
            problems.append(f'{b.where}: {b.lang} block without a <!-- snippet: {"|".join(KINDS)} --> marker'
                            if not b.kind else f'{b.where}: unknown snippet kind {b.kind!r}')
        elif b.lang not in ('python', 'bash') and b.kind:
            problems.append(f'{b.where}: a {b.lang} block has a snippet marker; only python and bash blocks run')
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('path', FILES)
def test_every_block_parses_and_its_commands_take_their_options(path):
    blocks = code_blocks(path)
    for b in blocks:
        if b.lang == 'python':
            check_python(b)
            if b.kind == 'run':
                b.runnable_code()  # every substitution matches
        else:
            check_bash(b)


@pytest.fixture(scope='module')
def docs_data(tmp_path_factory):
    return make_data(str(tmp_path_factory.mktemp('docs_data')))


@pytest.mark.slow
@pytest.mark.parametrize('path', RUN_PARAMS)
def test_the_run_blocks_run(path, docs_data, tmp_path):
    cwd = make_sandbox(docs_data, str(tmp_path / 'sandbox'))
    for b in code_blocks(path):
        if b.kind == 'run':
            run_block(b, cwd)


def inline_commands():
    """Commands written in inline code (`python tools/x.py ...`, `bash tools/dist_train.sh ...`), usage forms with
    ``[...]``, ``...`` or ``<...>`` left out."""
    import re
    out = []
    for path in FILES:
        with open(osp.join(ROOT, path), encoding='utf-8') as f:
            text = re.sub(r'```.*?```', '', f.read(), flags=re.S)
        for span in re.findall(r'`([^`\n]+)`', text):
            if re.match(r'^(?:[A-Z_]+=\S+ )*(?:\.venv/bin/)?(?:python|bash) (?:tools|demo)/\S+ \S', span) \
                    and not re.search(r'\[|\.\.\.|<', span):
                out.append((path, span))
    return out


def test_inline_commands_take_their_options():
    from .snippets import bash_commands, check_command
    commands = inline_commands()
    assert len(commands) >= 10
    problems = []
    for path, span in commands:
        try:
            for tokens in bash_commands(span):
                check_command(tokens)
        except Exception as e:  # noqa: BLE001 - collected, reported together
            problems.append(f'{path}: `{span}`: {e}')
    assert not problems, '\n'.join(problems)
