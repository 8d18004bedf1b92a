"""Linear transfer evaluation of a frozen backbone on an image-folder dataset (SimCLR, Table 8, linear rows).

:func:`load_frozen_model` builds the model from a model-zoo name, a config (with a checkpoint), or a checkpoint
alone (its config is the one mmengine stores in ``meta['cfg']``); :func:`transfer_pipeline` is the paper's
preprocessing (short side resized to ``size``, centre crop ``size x size``, no augmentation);
:func:`linear_transfer` extracts the pooled backbone features ``h`` (N, D) of both splits with
:func:`mmsimclr.apis.extract_features` (progress bar) and runs
:func:`mmsimclr.evaluation.logistic_regression.evaluate_transfer` on them.
"""
import copy
import os.path as osp
import time
from typing import Optional, Sequence

import torch
from mmengine.config import Config

from mmsimclr.apis import extract_features, get_model
from mmsimclr.datasets.image_folder import scan_image_folder
from .logistic_regression import PAPER_GRID, evaluate_transfer

CHECKPOINT_SUFFIXES = ('.pth', '.pt', '.ckpt', '.bin')


def transfer_pipeline(size: int = 224) -> list:
    """Resize the short side to ``size`` and take the centre ``size x size`` crop (paper, Appendix B.6)."""
    return [dict(type='LoadImageFromFile'), dict(type='ResizeEdge', scale=size, edge='short', backend='pillow'),
            dict(type='CenterCrop', crop_size=size), dict(type='PackInputs')]


def _config_in_checkpoint(path: str) -> Config:
    from mmsimclr.utils.checkpoint import safe_torch_load
    checkpoint = safe_torch_load(path, map_location='cpu', name=path)
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    text = meta.get('cfg') if isinstance(meta, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f'Checkpoint {path} does not carry its config (meta["cfg"], written by mmengine '
                         'runners); pass the config too: transfer_linear.py CONFIG --checkpoint '
                         f'{path}')
    return Config.fromstring(text, file_format='.py')


def load_frozen_model(model: str, checkpoint: Optional[str] = None, device: Optional[str] = None,
                      progress: bool = True) -> torch.nn.Module:
    """The model in eval mode with its weights, from

    - a checkpoint file (``*.pth``): the config stored in it, its weights;
    - a config file: ``checkpoint`` if given, else the model-zoo weights of that config;
    - a model-zoo name: ``checkpoint`` if given, else its published weights.
    """
    if model.endswith(CHECKPOINT_SUFFIXES):
        if not osp.isfile(model):
            raise FileNotFoundError(f'Checkpoint {model} does not exist')
        if checkpoint is not None:
            raise ValueError('Pass either a checkpoint as MODEL or --checkpoint with a config / zoo name, not both')
        return get_model(_config_in_checkpoint(model), pretrained=model, device=device, progress=progress)
    return get_model(model, pretrained=checkpoint if checkpoint else True, device=device, progress=progress)


def with_pipeline(net: torch.nn.Module, pipeline: list) -> torch.nn.Module:
    """Make ``net`` (from :func:`mmsimclr.apis.get_model`) preprocess images with ``pipeline``; its config is
    copied, not changed in place."""
    cfg = copy.deepcopy(net.cfg)
    cfg.test_dataloader = dict(dataset=dict(pipeline=pipeline))
    net.cfg = cfg
    return net


def linear_transfer(net: torch.nn.Module, train_dir: str, test_dir: str, size: int = 224,
                    grid: Sequence[float] = PAPER_GRID, val_fraction: float = 0.2, seed: int = 0,
                    feature: str = 'feat', batch_size: int = 64, progress: bool = True) -> dict:
    """Fit the logistic regression on the features of ``train_dir`` and evaluate on ``test_dir`` (both
    ``<class>/<image>`` folders with the same class names).

    Returns:
        ``{'top1', 'top5', 'l2', 'val_top1': {lambda: %}, 'num_train', 'num_test', 'num_classes', 'feature_dim',
        'seconds'}``.
    """
    start = time.time()
    train_paths, train_labels, classes = scan_image_folder(train_dir)
    test_paths, test_labels, _ = scan_image_folder(test_dir, classes)
    net = with_pipeline(net, transfer_pipeline(size))
    feats = []
    for paths in (train_paths, test_paths):
        # labels are matched to rows by position: an unreadable file stops the evaluation, naming the file
        out = extract_features(net, paths, batch_size=batch_size, progress=progress, on_bad_image='raise')
        if feature not in out:
            names = sorted(k for k in out if k not in ('paths', 'indices'))
            raise ValueError(f'The model gives features {names}, not "{feature}"; pick one of those')
        feats.append(torch.from_numpy(out[feature]))
    result = evaluate_transfer(feats[0], torch.tensor(train_labels), feats[1], torch.tensor(test_labels), grid,
                               val_fraction, seed, num_classes=len(classes))
    return dict(result.as_dict(), num_train=len(train_paths), num_test=len(test_paths), num_classes=len(classes),
                feature_dim=int(feats[0].shape[1]), seconds=round(time.time() - start, 2))
