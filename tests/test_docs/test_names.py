"""Every name the README and the docs use exists, so that a rename cannot leave them pointing at nothing: config,
tool and test paths (brace alternatives and ``*`` patterns expanded), packaged config names, model-zoo names,
command-line options, the error messages the FAQ quotes, and the registered modules in the API reference. And the
README stays short, with every page of the docs one click away."""
import functools
import glob
import itertools
import os
import os.path as osp
import re

import pytest

from .snippets import DOCS, ROOT, doc_files

PATH = re.compile(r'(?<![\w/.-])((?:configs|tools|tests|mmsimclr|docs|resources|demo)/[\w./{},*-]*[\w*}])')
# options of other programs that the docs mention in prose (mim's, torchrun's, pytest's, pip's)
OTHER_PROGRAMS_OPTIONS = {'--gpus', '--launcher', '--srun-args', '--partition', '--gpus-per-node', '--dest',
                          '--config', '--checkpoint', '--nproc', '--nproc-per-node', '--nproc_per_node',
                          '--max-restarts', '--dist', '--no-deps', '--gres', '--index-url', '--extra-index-url',
                          '--keep-going', '--help'}


def expand_braces(text):
    """``a{0,1}b{x,y}`` -> ``a0bx, a0by, a1bx, a1by``."""
    parts = re.split(r'\{([^{}]*)\}', text)
    choices = [[p] if i % 2 == 0 else p.split(',') for i, p in enumerate(parts)]
    return [''.join(c) for c in itertools.product(*choices)]


def text_of(path):
    with open(osp.join(ROOT, path), encoding='utf-8') as f:
        return f.read()


def all_text():
    return '\n'.join(text_of(p) for p in doc_files())


def named_paths():
    """(file, path) for every repository path a doc names."""
    out = set()
    for doc in doc_files():
        text = text_of(doc)
        for m in PATH.finditer(text):
            name = m.group(1).rstrip('.')
            if text[m.end():m.end() + 1] == '<':  # configs/simclrv2/simclrv2_<arch>_...: a pattern
                name += '*'
            out.add((doc, name))
    return sorted(out)


def test_the_docs_name_paths():
    assert len(named_paths()) > 60


@pytest.mark.parametrize('doc,name', named_paths())
def test_every_path_the_docs_name_exists(doc, name):
    for variant in expand_braces(name):
        if variant.startswith('docs/en/_build'):
            continue
        pattern = osp.join(ROOT, variant)
        found = glob.glob(pattern) if '*' in variant else [pattern] if osp.exists(pattern) else []
        assert found, f'{doc} names {variant}, which does not exist'


def test_packaged_config_names_given_to_the_tools_resolve():
    """``python tools/train.py NAME`` / ``tools/test.py NAME`` with a packaged config name (no path), in prose too."""
    from mmsimclr.utils.config_path import resolve_config
    spans = '\n'.join(re.findall(r'`([^`\n]+)`', all_text()))  # inline code (code blocks: test_snippets.py)
    names = {m.group(1) for m in re.finditer(r'tools/(?:train|test)\.py +([\w./-]+[\w])(?= |$)', spans, re.M)
             if not m.group(1).isupper() and not m.group(1).startswith(('configs/', '-'))}
    assert names
    for name in sorted(names):
        assert osp.isfile(resolve_config(name)), name


def test_model_zoo_names_exist():
    """Names given to get_model / inference_model / mim download and the first column of the zoo tables."""
    from mmsimclr.apis import list_models
    text = all_text()
    called = set(re.findall(r"(?:get_model|inference_model)\('([\w.-]+)'", text))
    called |= set(re.findall(r'--config ([\w.-]+_in1k)\b', text))
    in_tables = set(re.findall(r'^\| `([\w.-]+_in1k)` \|', text, flags=re.M))
    named = set(re.findall(r'`([\w.-]+_simclrv2-(?:pre_linear|finetune-\d+pct)_in1k)`', text))
    known = set(list_models())
    names = {n for n in called | in_tables | named if not n.endswith('.py')}
    assert len(names) >= 7
    assert sorted(names - known) == []


@functools.lru_cache(maxsize=None)
def _sources():
    """The text of every .py / .sh file under mmsimclr/, tools/, demo/ and the Makefile (read once per process)."""
    chunks = []
    for folder in ('mmsimclr', 'tools', 'demo'):
        for f in glob.glob(osp.join(ROOT, folder, '**', '*'), recursive=True):
            if f.endswith(('.py', '.sh')):
                chunks.append(open(f, encoding='utf-8').read())
    chunks.append(text_of('Makefile'))
    return '\n'.join(chunks)


def test_every_option_the_docs_name_exists():
    """``--option`` in inline code of the README and the docs is an option some tool, script or the Makefile
    defines (options in code blocks are checked by each tool's own parser: test_snippets.py)."""
    sources = _sources()
    options = set()
    for span in re.findall(r'`([^`\n]+)`', all_text()):
        options |= set(re.findall(r'(?<![\w-])(--[a-z][\w-]*)', span))
    assert len(options) >= 15
    missing = sorted(o for o in options - OTHER_PROGRAMS_OPTIONS
                     if f"'{o}'" not in sources and f'"{o}"' not in sources and f'{o})' not in sources
                     and f'{o}=' not in sources and f'{o} ' not in sources)
    assert missing == [], f'options named in the docs that no tool defines: {missing}'


def test_the_errors_the_faq_quotes_exist():
    """Each FAQ entry quotes its error with ``<!-- error: FRAGMENT -->``: FRAGMENT is in the source, word for word."""
    fragments = re.findall(r'<!--\s*error:\s*(.*?)\s*-->', text_of('docs/en/faq.md'))
    assert len(fragments) >= 15
    sources = _sources()
    assert [f for f in fragments if f not in sources] == []


def _api_names():
    """The dotted names api.md documents: ``.. autofunction/autoclass/autoexception:: NAME`` and the ``:members:``
    of ``.. automodule:: MODULE``."""
    api = text_of('docs/en/api.md')
    names = re.findall(r'\.\. auto(?:function|class|exception):: ([\w.]+)', api)
    names += [f'{m}.{n.strip()}' for m, ns in re.findall(r'\.\. automodule:: ([\w.]+)\n\s+:members: ([\w, ]+)', api)
              for n in ns.split(',')]
    return names


def test_the_api_reference_covers_the_public_api_and_every_registered_module():
    import mmsimclr
    import mmsimclr.registry as registry
    from mmsimclr.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    documented = set(_api_names())
    missing = [f'mmsimclr.{n}' for n in mmsimclr.__all__ if n != '__version__' and f'mmsimclr.{n}' not in documented]
    from mmengine.registry import Registry
    for name in dir(registry):
        reg = getattr(registry, name)
        if not isinstance(reg, Registry):
            continue
        for key, cls in reg.module_dict.items():
            if cls.__module__.startswith('mmsimclr') and f'{cls.__module__}.{cls.__name__}' not in documented:
                missing.append(f'{name}: {key} ({cls.__module__}.{cls.__name__})')
    assert missing == []


def github_anchors(markdown):
    """The anchors GitHub (and MyST, myst_heading_anchors) gives the headings of a Markdown file."""
    out = set()
    for title in re.findall(r'^#{1,6} +(.+?) *$', re.sub(r'```.*?```', '', markdown, flags=re.S), flags=re.M):
        slug = re.sub(r'[^\w\- ]', '', title.replace('`', '').strip().lower()).replace(' ', '-')
        out.add(slug)
    return out


def test_the_readme_links_into_the_docs_exist():
    """The site checks its own links (test_build.py); the README's are checked here: page and anchor."""
    links = re.findall(r'\]\((docs/en/[\w-]+\.md)(?:#([\w-]+))?\)', text_of('README.md'))
    assert len(links) >= 10
    for page, anchor in links:
        assert osp.isfile(osp.join(ROOT, page)), page
        if anchor:
            assert anchor in github_anchors(text_of(page)), f'README.md links {page}#{anchor}: no such heading'


def test_the_readme_is_short_and_links_every_page():
    readme = text_of('README.md')
    assert len(readme.splitlines()) <= 200
    pages = sorted(f for f in os.listdir(DOCS) if f.endswith('.md') and f != 'index.md')
    assert len(pages) >= 10
    linked = set(re.findall(r'\]\(docs/en/([\w-]+\.md)(?:#[\w-]+)?\)', readme))
    assert sorted(set(pages) - linked) == []


def _api_objects():
    import importlib
    out = []
    for name in _api_names():
        module, attr = name.rsplit('.', 1)
        out.append((name, getattr(importlib.import_module(module), attr)))
    return out


def test_the_api_reference_documents_every_argument():
    """Each function and class of the API reference has a docstring with a summary line and names every argument of
    its signature in its ``Args:`` section (one entry may name several: ``z_a, z_b (Tensor): ...``)."""
    import inspect
    objects = _api_objects()
    assert len(objects) >= 40
    problems = []
    for name, obj in objects:
        doc = inspect.getdoc(obj) or ''
        if not doc or doc.lstrip().startswith('Args:'):
            problems.append(f'{name}: no summary line')
            continue
        try:
            params = [p for p in inspect.signature(obj).parameters if p not in ('self', 'args', 'kwargs')]
        except (TypeError, ValueError):
            continue
        entries = re.findall(r'^\s+(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?:\([^)\n]*\))?\s*:', doc, flags=re.M)
        documented = {n.strip().lstrip('*') for e in entries for n in e.split(',')}
        missing = [p for p in params if p not in documented]
        if missing:
            problems.append(f'{name}: {", ".join(missing)} not in its Args')
    assert problems == [], '\n'.join(problems)
