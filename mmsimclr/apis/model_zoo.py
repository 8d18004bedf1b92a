"""The model zoo: named models (config + published weights) read from ``model_zoo.yml``.

``model_zoo.yml`` (repository root, OpenMMLab metafile format) lists the published SimCLR models. More entries come
from yml files named in the ``MMSIMCLR_MODEL_ZOO`` environment variable (paths separated by ``os.pathsep``) and from
:func:`register_model` (e.g. your own checkpoints, or a test's). Relative ``Config`` paths are resolved against the
folder of the yml file that lists them.
"""
import difflib
import fnmatch
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import yaml

#: Where ``configs/`` and ``model_zoo.yml`` live: the source tree (editable install) or the copy shipped inside
#: the package as ``mmsimclr/.mim`` (regular install, see setup.py).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if not osp.isfile(osp.join(REPO_ROOT, 'model_zoo.yml')):
    REPO_ROOT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim')
DEFAULT_ZOO_FILE = osp.join(REPO_ROOT, 'model_zoo.yml')
ZOO_ENV = 'MMSIMCLR_MODEL_ZOO'


@dataclass
class ModelInfo:
    """One model-zoo entry.

    Attributes:
        name: the model's name (what :func:`get_model` takes).
        config: absolute path of the config that builds the model.
        weights: URL (or local path) of the weights, or None.
        metadata: the entry's ``Metadata`` (Epochs, Batch Size, FLOPs, Parameters, Training Data).
        results: the entry's ``Results`` (a list of task/dataset/metrics dicts), or None.
        collection: ``In Collection``.
        downstream: names of models fine-tuned/evaluated from this one.
        converter: ``Converter:`` of the entry: the name of a weight converter (:data:`WEIGHT_CONVERTERS`) that
            turns the published file (e.g. the SimCLR paper's TensorFlow archive) into a checkpoint, on first use.
    """
    name: str
    config: str
    weights: Optional[str] = None
    metadata: Dict = field(default_factory=dict)
    results: Optional[List[Dict]] = None
    collection: Optional[str] = None
    downstream: List[str] = field(default_factory=list)
    converter: Optional[str] = None


#: ``Converter:`` names -> ``fn(url, progress) -> local checkpoint path`` (download, convert once, cache, check).
WEIGHT_CONVERTERS: Dict[str, Callable[[str, bool], str]] = {}

_FILE_ENTRIES: Dict[str, Dict[str, ModelInfo]] = {}  # yml path -> its entries (read once per path)
_REGISTERED: Dict[str, ModelInfo] = {}


def _entry_from_yml(item: dict, base_dir: str, source: str) -> ModelInfo:
    for key in ('Name', 'Config'):
        if not item.get(key):
            raise ValueError(f'Model-zoo file {source}: an entry lacks "{key}" ({item!r}); every model needs '
                             'Name and Config')
    config = item['Config']
    if not osp.isabs(config):
        config = osp.join(base_dir, config)
    return ModelInfo(name=item['Name'], config=osp.normpath(config), weights=item.get('Weights'),
                     metadata=dict(item.get('Metadata') or {}), results=item.get('Results'),
                     collection=item.get('In Collection'), downstream=list(item.get('Downstream') or []),
                     converter=item.get('Converter'))


def load_zoo_file(path: str) -> Dict[str, ModelInfo]:
    """Read the ``Models`` of one metafile into ``{name: ModelInfo}`` (cached per path)."""
    path = osp.abspath(osp.expanduser(path))
    if path not in _FILE_ENTRIES:
        if not osp.isfile(path):
            raise FileNotFoundError(f'Model-zoo file {path} does not exist; fix the {ZOO_ENV} environment variable '
                                    'or the path you passed')
        with open(path, encoding='utf-8') as f:
            content = yaml.safe_load(f) or {}
        models = content.get('Models') if isinstance(content, dict) else None
        if not isinstance(models, list):
            raise ValueError(f'Model-zoo file {path} has no "Models:" list; see model_zoo.yml for the format')
        base_dir = osp.dirname(path)
        _FILE_ENTRIES[path] = {m.name: m for m in (_entry_from_yml(item, base_dir, path) for item in models)}
    return _FILE_ENTRIES[path]


def _zoo_files() -> List[str]:
    extra = [p for p in os.environ.get(ZOO_ENV, '').split(os.pathsep) if p]
    return [DEFAULT_ZOO_FILE] + extra


def all_models() -> Dict[str, ModelInfo]:
    """Every known model: ``model_zoo.yml``, then ``MMSIMCLR_MODEL_ZOO`` files, then :func:`register_model`
    entries (later sources override earlier ones with the same name)."""
    models: Dict[str, ModelInfo] = {}
    for path in _zoo_files():
        models.update(load_zoo_file(path))
    models.update(_REGISTERED)
    return models


def list_models(pattern: Optional[str] = None) -> List[str]:
    """Sorted names of every known model, optionally filtered by ``pattern``.

    The names are those of ``model_zoo.yml``, of the ``MMSIMCLR_MODEL_ZOO`` files and of :func:`register_model`.

    Args:
        pattern (str, optional): a shell-style pattern (``'*linear*'``; it must match the whole name) or, without
            any of the wildcards ``*``, ``?``, ``[``, a substring (``'800e'``); case-insensitive either way.
            Defaults to None: every name.

    Returns:
        list[str]: the matching names, sorted.
    """
    names = sorted(all_models())
    if pattern is None:
        return names
    pattern = pattern.lower()
    if not any(c in pattern for c in '*?['):
        pattern = f'*{pattern}*'
    return [n for n in names if fnmatch.fnmatch(n.lower(), pattern)]


def get_model_info(name: str) -> ModelInfo:
    """The zoo entry called ``name``.

    Args:
        name (str): the model's name, exactly as :func:`list_models` gives it (case-sensitive, no pattern).

    Returns:
        ModelInfo: the entry; a :func:`register_model` entry wins over a yml entry of the same name.

    Raises:
        ValueError: unknown name; the message lists the closest known names.
    """
    models = all_models()
    if name in models:
        return models[name]
    close = difflib.get_close_matches(name, list(models), n=5, cutoff=0.4)
    hint = f'Did you mean: {", ".join(close)}?' if close else f'Known models: {", ".join(sorted(models))}.'
    raise ValueError(f'Unknown model "{name}": it is neither a model-zoo name nor a config file. {hint} '
                     'See mmsimclr.list_models() or model_zoo.yml.')


def find_by_config(config: str) -> Optional[ModelInfo]:
    """The zoo entry whose config is the file ``config`` (the first listed), or None."""
    config = osp.normpath(osp.abspath(config))
    for info in all_models().values():
        if info.config == config:
            return info
    return None


def register_model(name: str, config: str, weights: Optional[str] = None, metadata: Optional[dict] = None,
                   force: bool = False) -> ModelInfo:
    """Add a named model (config path + weights URL or path) to the model zoo of this process.

    :func:`get_model` and :func:`inference_model` then accept ``name``. The entry lives in memory only (nothing is
    written to a yml file) until :func:`unregister_model` removes it or the process ends.

    Args:
        name (str): the model's name. It must not be a known name already, unless ``force``.
        config (str): path of the config that builds the model. A relative path is taken relative to the
            repository root (the source tree, or the copy of ``configs/`` shipped in the package), not to the
            current directory. The file must exist.
        weights (str, optional): URL or local path of the checkpoint that ``get_model(name, pretrained=True)``
            loads; not checked here. Defaults to None: the model has no published weights, and
            ``pretrained=True`` is refused.
        metadata (dict, optional): the entry's ``Metadata`` (e.g. ``Epochs``, ``Batch Size``), copied. Defaults
            to None (an empty dict).
        force (bool): replace an existing entry of the same name (a yml entry is shadowed, not removed: it
            returns after :func:`unregister_model`). Defaults to False, so that a name is not replaced by mistake.

    Returns:
        ModelInfo: the new entry (with the absolute, normalised config path).

    Raises:
        ValueError: ``name`` exists already (pass ``force=True`` to replace it) or ``config`` does not exist.
    """
    if not force and name in all_models():
        raise ValueError(f'Model "{name}" is already in the model zoo; pass force=True to replace it')
    path = config if osp.isabs(config) else osp.join(REPO_ROOT, config)
    if not osp.isfile(path):
        raise ValueError(f'register_model("{name}"): config {config} does not exist')
    info = ModelInfo(name=name, config=osp.normpath(path), weights=weights, metadata=dict(metadata or {}))
    _REGISTERED[name] = info
    return info


def unregister_model(name: str) -> None:
    """Remove a model added with :func:`register_model` (no-op when there is none).

    Args:
        name (str): the name given to :func:`register_model`. Entries of the yml files cannot be removed: a yml
            entry that the registered one shadowed is visible again afterwards.
    """
    _REGISTERED.pop(name, None)
