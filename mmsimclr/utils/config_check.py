"""Check a training config before any work starts, with errors that name the key and the fix.

Without this, a typo in a ``type`` fails deep inside the runner, a missing data folder fails after the work dir,
logger and model are set up, and a neck whose ``in_channels`` does not match the backbone fails at the first
forward pass, possibly after minutes of start-up on a cluster. :func:`check_config` finds these before the runner
is built:

* every ``type`` (and ``optim_wrapper.constructor``) names a registered module;
* the training data (and validation data, when ``val_cfg`` is set) exist: ``data_root``, ``ann_file`` and, for image
  folder datasets, a folder that holds at least one image; without an annotation file (ImageNet's
  ``meta/<split>.txt`` missing), a dataset with fixed classes (ImageNet: 1000) needs that many class sub-folders,
  which mmpretrain would only assert after scanning every image. Relative paths are shown with the absolute path
  they mean from the working directory;
* the config file agrees with its name (``NxbB`` = GPUs x batch per GPU, ``Ee`` = epochs); a value set on the
  command line that differs from the name is reported as a warning, since that is deliberate;
* every ``temperature`` in the model is > 0, the model builds, and a dry run of backbone, neck and head on a tiny
  input succeeds, with ``in_channels`` mismatches named.
"""
import difflib
import inspect
import os
import os.path as osp
import re
import warnings
from typing import Any, Iterator, List, Optional, Tuple

import mmengine.registry as engine_registry
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, Registry

import mmsimclr.registry as ours
from mmsimclr.registry import DATASETS, MODELS


class ConfigError(ValueError):
    """A config cannot work; the message names every offending key."""


# ------------------------------------------------------------------------------------------------ registered types
def _registries() -> List[Registry]:
    found = [v for v in vars(ours).values() if isinstance(v, Registry)]
    return found + [engine_registry.FUNCTIONS]


def _walk(node: Any, key: str) -> Iterator[Tuple[str, dict]]:
    if isinstance(node, dict):
        yield key, node
        for k, v in node.items():
            yield from _walk(v, f'{key}.{k}' if key else str(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _walk(v, f'{key}.{i}')


def check_types(cfg: Config) -> List[str]:
    """Problems with ``type`` names that no mmsimclr/mmpretrain/mmengine registry knows."""
    registries = _registries()
    problems = []
    for key, node in _walk(cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg), ''):
        for field in ('type', 'constructor'):
            name = node.get(field)
            if field == 'constructor' and not key.startswith('optim_wrapper'):
                continue
            if not isinstance(name, str) or any(r.get(name) is not None for r in registries):
                continue
            known = sorted({n for r in registries for n in _names(r)})
            close = difflib.get_close_matches(name.split('.')[-1], known, n=3)
            hint = f' Did you mean {", ".join(repr(c) for c in close)}?' if close else ''
            problems.append(f'{key}.{field}: unknown type {name!r}, not registered in mmsimclr, mmpretrain or '
                            f'mmengine.{hint} Fix the name, or add the module that registers it to custom_imports.')
    return problems


def _names(registry: Registry) -> Iterator[str]:
    while registry is not None:
        yield from registry.module_dict
        registry = registry.parent


# ------------------------------------------------------------------------------------------------------------ data
def shown_path(path: str) -> str:
    """``path`` as configured and, when relative, the absolute path it means from the working directory
    (``data/imagenet/ (absolute: /home/me/run/data/imagenet)``): a relative path alone hides where it was looked for."""
    path = str(path)
    return path if osp.isabs(path) or '://' in path else f'{path} (absolute: {osp.abspath(path)})'


def _has_image(folder: str, suffixes) -> bool:
    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(suffixes) for f in files):
            return True
    return False


def _fixed_classes(ds: dict, cls) -> Optional[int]:
    """How many classes the dataset insists on (``metainfo.classes`` in the config, else the class's own, e.g.
    ImageNet's 1000), or None when classes come from the data."""
    meta = ds.get('metainfo') or {}
    classes = meta.get('classes') if isinstance(meta, dict) else None
    if classes is None and isinstance(cls, type):
        classes = (getattr(cls, 'METAINFO', None) or {}).get('classes')
    if isinstance(classes, str):  # a file of class names: counted by mmpretrain, not here
        return None
    return len(classes) if classes else None


def _subfolders(folder: str) -> int:
    with os.scandir(folder) as entries:
        return sum(1 for e in entries if e.is_dir(follow_symlinks=True) and not e.name.startswith('.'))


def check_dataset(ds: dict, key: str = 'dataset') -> List[str]:
    """Problems with the data of one dataset config (``key`` names it in the messages): a missing ``data_root``,
    ``ann_file`` or image folder, an image folder without images or with the wrong number of class folders.
    Datasets that download (``download=True``, the default of mmpretrain's CIFAR / MNIST) and remote roots
    are not checked."""
    if not isinstance(ds, dict):
        return []
    if 'dataset' in ds:  # wrappers: RepeatDataset, ClassBalancedDataset, ...
        return check_dataset(ds['dataset'], f'{key}.dataset')
    if 'datasets' in ds:
        return [p for i, d in enumerate(ds['datasets']) for p in check_dataset(d, f'{key}.datasets.{i}')]
    root = ds.get('data_root') or ''
    cls = _dataset_class(ds.get('type'))
    if '://' in str(root) or ds.get('download', _init_default(cls, 'download', False)):
        return []
    problems = []
    if root and not osp.isdir(root):
        return [f'{key}.data_root: folder {shown_path(root)} does not exist. Point it at your data with '
                f'--cfg-options {key}.data_root=PATH.']
    ann = ds.get('ann_file') or ''
    if ann and not osp.isfile(osp.join(root, ann)):
        problems.append(f'{key}.ann_file: {shown_path(osp.join(root, ann))} does not exist. Put the annotation '
                        f'file there, or set --cfg-options {key}.ann_file=PATH (relative to data_root), or '
                        f"{key}.ann_file='' to read the classes from the sub-folders of the image folder.")
    prefix = ds.get('data_prefix') or ''
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path') or prefix.get('img') or ''
    if not prefix and ds.get('split'):
        prefix = ds['split']
    if cls is None or not _is_image_folder(cls):
        return problems
    folder = osp.join(root, prefix) if prefix else root
    if not folder:
        return problems
    split_ann = osp.join(root, 'meta', f'{ds["split"]}.txt') if ds.get('split') else None
    has_split_ann = split_ann is not None and osp.isfile(split_ann)
    if not osp.isdir(folder):
        problems.append(f'{key}.data_prefix: image folder {shown_path(folder)} does not exist.')
    elif not ann and not has_split_ann:
        if not _has_image(folder, _image_extensions(ds, cls)):
            problems.append(f'{key}: image folder {shown_path(folder)} holds no images; expected '
                            f'{folder}/<class>/<image>.')
        elif ds.get('split') != 'test' and ds.get('with_label', True):
            problems += _check_class_folders(ds, key, cls, folder, split_ann)
    return problems


def _check_class_folders(ds: dict, key: str, cls, folder: str, split_ann: Optional[str]) -> List[str]:
    """Without an annotation file, mmpretrain reads labels from the class sub-folders of ``folder`` and asserts
    (after scanning every image) that there are as many as the dataset's fixed classes: check the count now."""
    expected = _fixed_classes(ds, cls)
    if expected is None:
        return []
    found = _subfolders(folder)
    if found == expected:
        return []
    name = cls.__name__ if isinstance(cls, type) else str(ds.get('type'))
    missing = f'{shown_path(split_ann)} does not exist, so' if split_ann else 'No ann_file is set, so'
    return [f'{key}: {missing} {name} would read labels from the class sub-folders of {shown_path(folder)}, '
            f'but it has {found} sub-folder(s) where {name} needs {expected}. Put the annotation list there '
            f'({name} layout: one "<image path relative to the image folder> <label>" per line, e.g. '
            f"meta/{ds.get('split') or 'train'}.txt from mmpretrain's ImageNet preparation), set "
            f'{key}.ann_file, or use {key}.type=CustomDataset to take the classes from the folders.']


def _dataset_class(name):
    if not isinstance(name, str):
        return name
    return DATASETS.get(name)


def _init_default(cls, name: str, fallback):
    """The default of ``cls``'s constructor argument ``name`` (``fallback`` when it has none)."""
    if not isinstance(cls, type):
        return fallback
    param = inspect.signature(cls.__init__).parameters.get(name)
    return fallback if param is None or param.default is inspect.Parameter.empty else param.default


def _image_extensions(ds: dict, cls) -> tuple:
    """The file endings the dataset lists: the config's ``extensions``, else the class's own (``ImageNet`` passes
    its ``IMG_EXTENSIONS``; ``CustomDataset``'s default otherwise)."""
    from mmpretrain.datasets import CustomDataset
    default = getattr(cls, 'IMG_EXTENSIONS', None) or _init_default(CustomDataset, 'extensions', ())
    return tuple(e.lower() for e in (ds.get('extensions') or default))


def _is_image_folder(cls) -> bool:
    # lazy: mmpretrain.datasets imports every mmpretrain dataset; only configs with datasets to check pay for it
    from mmpretrain.datasets import CustomDataset
    return isinstance(cls, type) and issubclass(cls, CustomDataset)


def check_data(cfg: Config, phase: str = 'train') -> List[str]:
    """Missing or empty data folders / annotation files of the dataloaders that ``phase`` uses (``'train'``: the
    training data and, with ``val_cfg``, the validation data; ``'test'``: the test data)."""
    if phase == 'test':
        keys = ['test_dataloader']
    else:
        keys = ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') else [])
    problems = []
    for key in keys:
        loader = cfg.get(key)
        if isinstance(loader, dict):
            problems += check_dataset(loader.get('dataset'), f'{key}.dataset')
    return problems


# ----------------------------------------------------------------------------------------------------- file name
_BATCH = re.compile(r'_(\d+)xb(\d+)-')
_EPOCHS = re.compile(r'-(\d+)e_')


def name_values(config_path: str) -> Tuple[Optional[int], Optional[int], Optional[int]]:
    """``(gpus, batch per GPU, epochs)`` from an OpenMMLab config name (None where the name has no such part).
    The epoch count is the last ``-<E>e_`` (benchmark names also mention the pretraining epochs)."""
    name = osp.basename(config_path)
    batch = _BATCH.search(name)
    epochs = _EPOCHS.findall(name)
    return (int(batch.group(1)) if batch else None, int(batch.group(2)) if batch else None,
            int(epochs[-1]) if epochs else None)


def _values(cfg) -> Tuple[Optional[int], Optional[int], Optional[int]]:
    batch = (cfg.get('train_dataloader') or {}).get('batch_size')
    epochs = (cfg.get('train_cfg') or {}).get('max_epochs')
    base = (cfg.get('auto_scale_lr') or {}).get('base_batch_size')
    return batch, epochs, base


def check_name(config_path: str, file_cfg: Config, cfg: Optional[Config] = None) -> List[str]:
    """Problems where the config *file* contradicts its name; warnings for command-line values that differ."""
    gpus, batch, epochs = name_values(config_path)
    name = osp.basename(config_path)
    problems = []
    f_batch, f_epochs, f_base = _values(file_cfg)
    if batch is not None and f_batch is not None and f_batch != batch:
        problems.append(f'train_dataloader.batch_size: {f_batch} in {name}, whose name says {gpus}xb{batch} '
                        f'({batch} per GPU). Fix the value or rename the file.')
    if epochs is not None and f_epochs is not None and f_epochs != epochs:
        problems.append(f'train_cfg.max_epochs: {f_epochs} in {name}, whose name says {epochs}e. '
                        'Fix the value or rename the file.')
    if gpus is not None and f_base is not None and 'tiny' not in name and f_base != gpus * batch:
        problems.append(f'auto_scale_lr.base_batch_size: {f_base} in {name}, whose name says a total batch of '
                        f'{gpus}x{batch}={gpus * batch}.')
    if cfg is not None:
        r_batch, r_epochs, _ = _values(cfg)
        if batch is not None and r_batch not in (None, f_batch):
            warnings.warn(f'train_dataloader.batch_size={r_batch} differs from {name} ({batch} per GPU)')
        if epochs is not None and r_epochs not in (None, f_epochs):
            warnings.warn(f'train_cfg.max_epochs={r_epochs} differs from {name} ({epochs} epochs)')
    return problems


# ----------------------------------------------------------------------------------------------------------- model
def _channels(out) -> Optional[int]:
    if isinstance(out, (list, tuple)) and out:
        out = out[-1]
    return out.shape[1] if isinstance(out, torch.Tensor) and out.dim() >= 2 else None


def check_model(cfg: Config, input_size: int = 64) -> List[str]:
    """Temperatures > 0, the model builds, and backbone -> neck -> head shapes agree (dry run, 2 images)."""
    model_cfg = cfg.get('model')
    if not isinstance(model_cfg, dict):
        return ['model: the config has no model dict.']
    problems = [f'{key}.temperature: {node["temperature"]} must be > 0 (the paper uses 0.1 to 0.5).'
                for key, node in _walk(model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else dict(model_cfg),
                                       'model')
                if isinstance(node.get('temperature'), (int, float)) and node['temperature'] <= 0]
    if problems:
        return problems
    try:  # nested builders (norm layers, losses) look names up in the default scope, as in the runner
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'mmsimclr'):
            model = MODELS.build(model_cfg)
    except Exception as e:
        return [f'model: building it failed: {type(e).__name__}: {e}']
    backbone, neck, head = (getattr(model, n, None) for n in ('backbone', 'neck', 'head'))
    if backbone is None:
        return []
    model.eval()
    with torch.no_grad():
        try:
            feats = backbone(torch.zeros(2, 3, input_size, input_size))
        except Exception as e:  # some backbones need their own input size: not proof of a config error
            warnings.warn(f'model.backbone: skipped the shape check, a dry run on a {input_size}x{input_size} '
                          f'input failed: {type(e).__name__}: {e}')
            return []
        channels = _channels(feats)
        for part, key in ((neck, 'model.neck'), (head, 'model.head')):
            if part is None:
                continue
            part_cfg = model_cfg.get(key.split('.')[1]) or {}
            expected = part_cfg.get('in_channels')
            if isinstance(expected, int) and channels is not None and expected != channels:
                return [f'{key}.in_channels: {expected}, but its input has {channels} channels. '
                        f'Set {key}.in_channels={channels}.']
            if part is head:
                break  # heads take targets too; their input width is all that can be checked here
            try:
                feats = part(feats)
            except Exception as e:
                return [f'{key}: a dry run on the backbone output failed: {type(e).__name__}: {e}']
            channels = _channels(feats)
    return []


# ------------------------------------------------------------------------------------------------------------- all
def check_config(cfg: Config, config_path: Optional[str] = None, file_cfg: Optional[Config] = None,
                 phase: str = 'train') -> None:
    """Run every check; raise :class:`ConfigError` listing all problems (types first: later checks need them).
    ``phase``: ``'train'`` or ``'test'``, the data checked (see :func:`check_data`)."""
    problems = check_types(cfg)
    if not problems:
        if config_path is not None:
            problems += check_name(config_path, file_cfg if file_cfg is not None else cfg, cfg)
        problems += check_data(cfg, phase)
        problems += check_model(cfg)
    if problems:
        where = f' in {config_path}' if config_path else ''
        raise ConfigError(f'{len(problems)} problem(s){where}:\n  - ' + '\n  - '.join(problems))
