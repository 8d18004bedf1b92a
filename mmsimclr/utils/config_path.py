"""Finding a config file from what a user types: a path, or the name of a config shipped with mmsimclr (as mim).

``tools/train.py`` and ``tools/test.py`` accept

* a path to a config file (relative to the working directory, or absolute), or
* a packaged config by name, with or without ``.py``: ``simclr_r50_16xb256-coslr-200e_in1k``,
  ``benchmarks/resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k`` or ``configs/...`` -- looked up in the
  source checkout's ``configs/`` (editable install) and in the installed package's ``mmsimclr/.mim/configs``.

A name that finds nothing raises :class:`ConfigNotFoundError`, one line that names the absolute path tried and the
closest packaged names (``difflib``), instead of a traceback from deep inside the config loader.

Only the standard library is imported here, on purpose: the tools load this file before torch, mmengine and
mmpretrain (several seconds), so that a mistyped name is reported at once.
"""
import difflib
import os
import os.path as osp
import sys
from typing import List, Optional, Tuple

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))  # .../mmsimclr


class ConfigNotFoundError(FileNotFoundError):
    """No config file by that path or packaged name; the message names the closest packaged configs."""


def config_roots() -> List[str]:
    """Folders that hold mmsimclr's configs, best first: the source checkout's ``configs/`` (next to
    ``model_zoo.yml``) and the copy installed with the package (``mmsimclr/.mim/configs``)."""
    checkout = osp.dirname(_PACKAGE)
    candidates = []
    if osp.isfile(osp.join(checkout, 'model_zoo.yml')):
        candidates.append(osp.join(checkout, 'configs'))
    candidates.append(osp.join(_PACKAGE, '.mim', 'configs'))
    return [c for c in candidates if osp.isdir(c)]


def packaged_configs() -> List[Tuple[str, str]]:
    """``(name, path)`` of every runnable packaged config (``_base_`` fragments left out); ``name`` is the path
    under the configs folder without ``.py`` (``benchmarks/resnet50_...``), each name once (the checkout wins)."""
    found = {}
    for root in config_roots():
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != '_base_' and not d.startswith('.'))
            for file in sorted(files):
                if file.endswith('.py') and not file.startswith('_'):
                    path = osp.join(folder, file)
                    name = osp.relpath(path, root)[:-3].replace(os.sep, '/')
                    found.setdefault(name, path)
    return sorted(found.items())


def _as_name(config: str) -> str:
    """``configs/benchmarks/x.py`` / ``./benchmarks/x`` -> ``benchmarks/x``."""
    name = config.replace('\\', '/')
    while name.startswith('./'):
        name = name[2:]
    if name.startswith('configs/'):
        name = name[len('configs/'):]
    return name[:-3] if name.endswith('.py') else name


def close_config_names(config: str, n: int = 3) -> List[str]:
    """Packaged config names closest to ``config``, compared by file name (where typos usually are): those with a
    ``difflib`` similarity of at least 0.7 and within 0.1 of the best one, most similar first."""
    by_base = {}
    for name, _ in packaged_configs():
        by_base.setdefault(name.rsplit('/', 1)[-1], name)
    wanted = _as_name(config).rsplit('/', 1)[-1]
    scored = sorted(((difflib.SequenceMatcher(None, wanted, base).ratio(), base) for base in by_base),
                    key=lambda x: (-x[0], x[1]))
    if not scored or scored[0][0] < 0.7:
        return []
    best = scored[0][0]
    return [by_base[base] for ratio, base in scored[:n] if ratio >= max(0.7, best - 0.1)]


def resolve_config(config: str) -> str:
    """The config file that ``config`` means: the file itself when it exists, else the packaged config of that
    name (see the module docstring). Absolute paths and paths outside ``configs/`` are never replaced by a
    packaged file of the same name.

    Raises:
        ConfigNotFoundError: neither a file nor a packaged name; the message names the absolute path that was
            tried and the closest packaged names.
    """
    path = os.fspath(config)
    if osp.isfile(path):
        return path
    name = _as_name(path)
    if not osp.isabs(path) and name and not name.startswith('../'):
        packaged = dict(packaged_configs())
        if name in packaged:
            return packaged[name]
        if '/' not in name:  # a bare name: also found in a sub-folder (benchmarks/)
            hits = [p for n, p in packaged.items() if n.rsplit('/', 1)[-1] == name]
            if len(hits) == 1:
                return hits[0]
    raise ConfigNotFoundError(_not_found_message(path))


def _not_found_message(path: str) -> str:
    where = '' if osp.isabs(path) else f' (absolute: {osp.abspath(path)})'
    close = close_config_names(path)
    if close:
        hint = 'Did you mean ' + ', '.join(close) + '? (packaged config names work as they are)'
    else:
        roots = config_roots()
        folder = f' in {roots[0]}' if roots else ''
        hint = (f'Pass a config file, or the name of a packaged config{folder} '
                '(e.g. simclr_r50_16xb256-coslr-200e_in1k).')
    return f'config {path} does not exist{where}. {hint}'


def resolve_or_exit(config: str, prog: Optional[str] = None) -> str:
    """:func:`resolve_config` for command-line tools: on failure one line ``PROG: error: ...`` on stderr and exit
    status 2, as argparse reports a bad argument."""
    try:
        return resolve_config(config)
    except ConfigNotFoundError as e:
        print(f'{prog or osp.basename(sys.argv[0])}: error: {e}', file=sys.stderr)
        raise SystemExit(2)
