"""``get_model``: the one way to build a ready-to-use model -- from a model-zoo name, a config file, a ``Config``
or a checkpoint that stores its config -- with weights. The inference API, the evaluation tools (kNN, t-SNE, linear
transfer) and users all load models through it.

Weights (``pretrained``) are none (``False``, the default, as mmpretrain's and timm's ``get_model``), the zoo
entry's published checkpoint (``True``), or a local path or URL. Downloads are cached and sha256-checked
(:mod:`mmsimclr.apis.download`); every checkpoint is read weights-only
(:func:`mmsimclr.utils.checkpoint.safe_torch_load`), so a file that pickles code is refused, never executed, and the
config a checkpoint stores is read as data (:mod:`mmsimclr.utils.stored_config`), never run.
"""
import copy
import logging
import os.path as osp
import warnings
from typing import Optional, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from mmsimclr.registry import MODELS
from mmsimclr.utils.checkpoint import safe_torch_load
from mmsimclr.utils.setup_env import register_all_modules
from mmsimclr.utils.stored_config import config_from_text
from .download import fetch_checkpoint
from . import simclr_tf  # noqa: F401 (registers the 'simclr_tf' weight converter)
from .model_zoo import WEIGHT_CONVERTERS, ModelInfo, find_by_config, get_model_info


#: File endings that make ``get_model``'s ``model`` a checkpoint (its stored config and its weights).
CHECKPOINT_SUFFIXES = ('.pth', '.pt', '.ckpt', '.bin')


def config_from_checkpoint(path: str) -> Config:
    """The config an mmengine runner stored in checkpoint ``path`` (``meta['cfg']``), read as data.

    The text is never executed and its ``custom_imports`` are not imported (see :mod:`mmsimclr.utils.stored_config`).

    Args:
        path (str): a local checkpoint file (not a URL), read weights-only on the CPU.

    Returns:
        Config: the stored config.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the checkpoint stores no config, or no literal ``model`` entry in it, or a config of another
            ``default_scope`` than ``mmsimclr`` / ``mmpretrain`` (e.g. mmselfsup's).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint {path} does not exist')
    checkpoint = safe_torch_load(path, map_location='cpu', name=path)
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    text = meta.get('cfg') if isinstance(meta, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f'Checkpoint {path} does not carry its config (meta["cfg"], written by mmengine runners); '
                         f'pass the config too, e.g. get_model(CONFIG, pretrained={path!r}) or '
                         f'transfer_linear.py CONFIG --checkpoint {path}')
    try:
        cfg = config_from_text(text)
    except (SyntaxError, ValueError) as e:
        raise ValueError(f'Checkpoint {path}: the config it stores cannot be read as data ({type(e).__name__}: '
                         f'{e}); pass the config file too, e.g. get_model(CONFIG, pretrained={path!r})') from e
    scope = cfg.get('default_scope')
    if scope not in (None, 'mmsimclr', 'mmpretrain'):  # e.g. the mmselfsup configs of published checkpoints
        raise ValueError(f'Checkpoint {path} stores a config of {scope} (default_scope={scope!r}), whose modules '
                         f'mmsimclr does not build; pass the matching mmsimclr config or zoo name with it, e.g. '
                         f'get_model(CONFIG, pretrained={path!r}) or transfer_linear.py CONFIG --checkpoint {path}')
    return cfg


def _resolve(model: Union[str, Config]) -> Tuple[Config, Optional[ModelInfo]]:
    """Config and zoo entry (if any) for a name, a config path or a Config."""
    if isinstance(model, Config):
        return model, None
    if not isinstance(model, str):
        raise TypeError(f'get_model: expected a model-zoo name, a config path, a checkpoint or a mmengine Config, '
                        f'got {type(model).__name__}')
    if model.endswith(CHECKPOINT_SUFFIXES):
        return config_from_checkpoint(model), None
    if model.endswith('.py') or osp.isfile(model):
        if not osp.isfile(model):
            raise FileNotFoundError(f'Config file {model} does not exist; pass an existing config or a model-zoo '
                                    'name (see mmsimclr.list_models())')
        return Config.fromfile(model), find_by_config(model)
    info = get_model_info(model)
    if not osp.isfile(info.config):
        raise FileNotFoundError(f'Model "{info.name}" names config {info.config}, which does not exist')
    return Config.fromfile(info.config), info


def _weights_source(pretrained: Union[bool, str, None], info: Optional[ModelInfo], model) -> Optional[str]:
    if isinstance(model, str) and model.endswith(CHECKPOINT_SUFFIXES):  # a checkpoint brings its own weights
        if isinstance(pretrained, str):
            raise ValueError(f'get_model: {model} is a checkpoint with its own weights; pass either it or a '
                             f'config / zoo name with pretrained={pretrained!r}, not both')
        return model
    if pretrained is True:
        if info is None or not info.weights:
            what = f'model "{info.name}"' if info else f'config {model if isinstance(model, str) else "given"}'
            raise ValueError(f'No published weights are known for {what}; pass pretrained=PATH_OR_URL, or '
                             'pretrained=False for random weights')
        return info.weights
    if pretrained is False or pretrained is None:
        return None
    if isinstance(pretrained, str):
        return pretrained
    raise TypeError(f'get_model: pretrained must be True, False, a path or a URL, got {pretrained!r}')


def _fetch_weights(source: str, info: Optional[ModelInfo], progress: bool) -> str:
    """Local checkpoint for ``source``; a zoo entry with ``Converter:`` converts its published file on first use."""
    if info is not None and info.converter and source == info.weights:
        if info.converter not in WEIGHT_CONVERTERS:
            raise ValueError(f'Model "{info.name}" names converter "{info.converter}", which is unknown; known: '
                             f'{", ".join(sorted(WEIGHT_CONVERTERS))}')
        return WEIGHT_CONVERTERS[info.converter](source, progress)
    return fetch_checkpoint(source, progress=progress)


def _drop_pretrained_init(model_cfg) -> None:
    """Remove ``init_cfg=dict(type='Pretrained', ...)`` entries: they name training-time files, and the weights are
    loaded explicitly here instead."""
    for node in (model_cfg, model_cfg.get('backbone') or {}, model_cfg.get('neck') or {},
                 model_cfg.get('head') or {}):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            node['init_cfg'] = None


def _state_dict_of(checkpoint, source: str) -> dict:
    state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f'Checkpoint {source} holds no state dict (expected a dict of tensors, or a dict with '
                         "'state_dict')")
    if state_dict and all(k.startswith('module.') for k in state_dict):  # saved from a DDP-wrapped model
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    return state_dict


def load_weights(model: torch.nn.Module, state_dict: dict, source: str, config_name: str,
                 strict: bool = True) -> None:
    """Load ``state_dict`` into ``model``. With ``strict`` every model parameter/buffer must be covered; without,
    every backbone one must (a SimCLR checkpoint feeding a linear classifier: its head keeps its initialisation).

    Raises:
        ValueError: the checkpoint lacks weights the model needs (wrong checkpoint for this config).
    """
    result = model.load_state_dict(state_dict, strict=False)
    if not strict:
        backbone = {k for k in model.state_dict() if k.startswith('backbone.')}
        missing = [k for k in result.missing_keys if k.startswith('backbone.')]
        if backbone and not backbone & set(state_dict):
            raise ValueError(f'Checkpoint {source} has no weight for the backbone of this model (keys look like '
                             f'{sorted(state_dict)[:3]}); is it for another architecture than config '
                             f'{config_name}?')
        if missing:
            raise ValueError(f'Checkpoint {source} lacks {len(missing)} backbone weights of config {config_name}, '
                             f'e.g. {missing[:3]}')
    elif result.missing_keys:
        missing = ', '.join(result.missing_keys[:5]) + (' ...' if len(result.missing_keys) > 5 else '')
        raise ValueError(f'Checkpoint {source} does not fit config {config_name}: it lacks '
                         f'{len(result.missing_keys)} of the model\'s weights ({missing}). Use a checkpoint '
                         'trained with this config, or the matching model-zoo name.')
    if result.unexpected_keys:
        warnings.warn(f'Checkpoint {source}: {len(result.unexpected_keys)} entries are not used by the model '
                      f'(e.g. {result.unexpected_keys[0]})')


def _class_names(model, checkpoint) -> Optional[list]:
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    classes = ((meta or {}).get('dataset_meta') or {}).get('classes') if isinstance(meta, dict) else None
    if classes:
        return list(classes)
    num_classes = getattr(getattr(model, 'head', None), 'num_classes', None)
    if num_classes == 1000:
        # lazy: mmpretrain.datasets imports every mmpretrain dataset, too slow for `import mmsimclr`
        from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
        return list(IMAGENET_CATEGORIES)
    return None


def _device(device: Optional[str]) -> torch.device:
    if device is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f'Invalid device "{device}"; use "cpu", "cuda" or "cuda:N"') from e
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'Device "{device}" was requested but no CUDA GPU is available; use device="cpu"')
    return device


def _quiet_init_weights(net: torch.nn.Module) -> None:
    """``init_weights()`` without mmengine's per-parameter INFO report (hundreds of lines for a ResNet-50)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        net.init_weights()
    finally:
        logger.setLevel(level)


def get_model(model: Union[str, Config], pretrained: Union[bool, str] = False, device: Optional[str] = None,
              progress: bool = True, strict: bool = True) -> torch.nn.Module:
    """Build a model in eval mode, with weights.

    Args:
        model: a model-zoo name (``mmsimclr.list_models()``), a config file path, a ``Config``, or a checkpoint
            written by an mmengine runner (``*.pth``): the model of the config stored in it (read as data, never
            executed) with its weights.
        pretrained: ``False`` (default, as in mmpretrain and timm): randomly initialised, nothing downloaded;
            ``True``: the zoo entry's published weights (downloaded once, checked, cached); a path or URL: that
            checkpoint (a dict of tensors, or a dict with ``'state_dict'``, like OpenMMLab's and mmengine's
            checkpoints). ``inference_model(name, ...)`` asks for ``True``.
        device: ``'cpu'``, ``'cuda'``...; default: the GPU when there is one.
        progress: show a progress bar while downloading.
        strict: the checkpoint must fill every weight of the model (default). ``False`` asks only for the
            backbone's: the rest (e.g. the head of a linear-evaluation config fed a SimCLR checkpoint) keeps its
            initialisation.

    Returns:
        The model, with ``model.cfg`` (its Config), ``model.zoo_name`` (or None) and ``model.dataset_meta``
        (``{'classes': [...]}`` for classifiers whose classes are known).
    """
    cfg, info = _resolve(model)
    target = _device(device)
    source = _weights_source(pretrained, info, model)
    checkpoint = None
    if source is not None:  # fetch and read first: a bad or unsafe file fails before the (slow) build
        path = _fetch_weights(source, info, progress)
        checkpoint = safe_torch_load(path, map_location='cpu', name=path)
        state_dict = _state_dict_of(checkpoint, path)

    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'mmsimclr'))
    if 'model' not in cfg:
        raise ValueError(f'Config {cfg.filename or "given"} has no "model" entry')
    model_cfg = copy.deepcopy(cfg.model)
    _drop_pretrained_init(model_cfg)
    net = MODELS.build(model_cfg)
    if checkpoint is None or not strict:
        _quiet_init_weights(net)
    if checkpoint is not None:
        load_weights(net, state_dict, path, info.name if info else (cfg.filename or 'given'), strict)
    net.cfg = cfg
    net.zoo_name = info.name if info else None
    classes = _class_names(net, checkpoint)
    net.dataset_meta = {'classes': classes} if classes else {}
    return net.to(target).eval()
