"""``get_model``: a ready-to-use model from a model-zoo name, a config file or a ``Config``, with weights.

Weights (``pretrained``) are none (``False``, the default, as mmpretrain's and timm's ``get_model``), the zoo
entry's published checkpoint (``True``), or a local path or URL. Downloads are cached and sha256-checked
(:mod:`mmsimclr.apis.download`); every checkpoint is read weights-only
(:func:`mmsimclr.utils.checkpoint.safe_torch_load`), so a file that pickles code is refused, never executed.
"""
import copy
import os.path as osp
import warnings
from typing import Optional, Tuple, Union

import torch
from mmengine.config import Config

from mmsimclr.utils.checkpoint import safe_torch_load
from .download import fetch_checkpoint
from .model_zoo import ModelInfo, find_by_config, get_model_info


def _resolve(model: Union[str, Config]) -> Tuple[Config, Optional[ModelInfo]]:
    """Config and zoo entry (if any) for a name, a config path or a Config."""
    if isinstance(model, Config):
        return model, None
    if not isinstance(model, str):
        raise TypeError(f'get_model: expected a model-zoo name, a config path or a mmengine Config, got '
                        f'{type(model).__name__}')
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


def load_weights(model: torch.nn.Module, state_dict: dict, source: str, config_name: str) -> None:
    """Load ``state_dict`` into ``model``; every model parameter/buffer must be covered.

    Raises:
        ValueError: the checkpoint lacks some of the model's weights (wrong checkpoint for this config).
    """
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys:
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
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        net.init_weights()
    finally:
        logger.setLevel(level)


def get_model(model: Union[str, Config], pretrained: Union[bool, str] = False, device: Optional[str] = None,
              progress: bool = True) -> torch.nn.Module:
    """Build a model in eval mode, with weights.

    Args:
        model: a model-zoo name (``mmsimclr.list_models()``), a config file path or a ``Config``.
        pretrained: ``False`` (default, as in mmpretrain and timm): randomly initialised, nothing downloaded;
            ``True``: the zoo entry's published weights (downloaded once, checked, cached); a path or URL: that
            checkpoint (a dict of tensors, or a dict with ``'state_dict'``, like OpenMMLab's and mmengine's
            checkpoints). ``inference_model(name, ...)`` asks for ``True``.
        device: ``'cpu'``, ``'cuda'``...; default: the GPU when there is one.
        progress: show a progress bar while downloading.

    Returns:
        The model, with ``model.cfg`` (its Config), ``model.zoo_name`` (or None) and ``model.dataset_meta``
        (``{'classes': [...]}`` for classifiers whose classes are known).
    """
    from mmengine.registry import init_default_scope

    from mmsimclr.registry import MODELS
    from mmsimclr.utils.setup_env import register_all_modules

    cfg, info = _resolve(model)
    target = _device(device)
    source = _weights_source(pretrained, info, model)
    checkpoint = None
    if source is not None:  # fetch and read first: a bad or unsafe file fails before the (slow) build
        path = fetch_checkpoint(source, progress=progress)
        checkpoint = safe_torch_load(path, map_location='cpu', name=path)
        state_dict = _state_dict_of(checkpoint, path)

    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'mmsimclr'))
    if 'model' not in cfg:
        raise ValueError(f'Config {cfg.filename or "given"} has no "model" entry')
    model_cfg = copy.deepcopy(cfg.model)
    _drop_pretrained_init(model_cfg)
    net = MODELS.build(model_cfg)
    if checkpoint is None:
        _quiet_init_weights(net)
    else:
        load_weights(net, state_dict, path, info.name if info else (cfg.filename or 'given'))
    net.cfg = cfg
    net.zoo_name = info.name if info else None
    classes = _class_names(net, checkpoint)
    net.dataset_meta = {'classes': classes} if classes else {}
    return net.to(target).eval()
