"""Every config file and tool the README names exists (brace alternatives and ``*`` patterns expanded), so a rename
cannot leave the README pointing at nothing."""
import glob
import itertools
import os.path as osp
import re

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PATH = re.compile(r'(?<![\w/.-])((?:configs|tools|tests|mmsimclr)/[\w./{},*-]*[\w*}])')


def expand_braces(text):
    """``a{0,1}b{x,y}`` -> ``a0bx, a0by, a1bx, a1by``."""
    parts = re.split(r'\{([^{}]*)\}', text)
    choices = [[p] if i % 2 == 0 else p.split(',') for i, p in enumerate(parts)]
    return [''.join(c) for c in itertools.product(*choices)]


def readme_paths():
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    return sorted({m.group(1).rstrip('.') for m in PATH.finditer(text)})


def test_the_readme_names_paths():
    assert len(readme_paths()) > 30


@pytest.mark.parametrize('name', readme_paths())
def test_every_path_the_readme_names_exists(name):
    for variant in expand_braces(name):
        pattern = osp.join(ROOT, variant)
        found = glob.glob(pattern) if '*' in variant else [pattern] if osp.exists(pattern) else []
        assert found, f'README.md names {variant}, which does not exist'


def readme_text():
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        return f.read()


def test_packaged_config_names_given_to_the_tools_resolve():
    """``python tools/train.py NAME`` / ``tools/test.py NAME`` with a packaged config name (no path)."""
    from mmsimclr.utils.config_path import resolve_config
    names = {m.group(1) for m in re.finditer(r'tools/(?:train|test)\.py\s+([\w./-]+[\w])(?=[\s`])', readme_text())
             if not m.group(1).isupper() and not m.group(1).startswith(('configs/', '-'))}
    assert len(names) >= 3
    for name in sorted(names):
        assert osp.isfile(resolve_config(name)), name


def test_model_zoo_names_exist():
    """Names given to get_model / inference_model and the first column of the zoo tables."""
    from mmsimclr.apis import list_models
    text = readme_text()
    called = set(re.findall(r"(?:get_model|inference_model)\('([\w.-]+)'", text))
    in_tables = set(re.findall(r'^\| `([\w.-]+_in1k)` \|', text, flags=re.M))
    known = set(list_models())
    names = {n for n in called | in_tables if not n.endswith('.py')}
    assert len(names) >= 7
    assert sorted(names - known) == []
