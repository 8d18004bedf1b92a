"""The labelled evaluation datasets and loaders that embedding-based evaluation (kNN, t-SNE) needs.

Shared by :class:`mmsimclr.engine.hooks.KNNMonitorHook` and ``tools/analysis/{knn_eval,visualize_tsne}.py``; the
model comes from :func:`mmsimclr.apis.get_model`, the features from
:func:`mmsimclr.evaluation.features.extract_dataset_features`.
"""
import copy
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.runner import Runner

from mmsimclr.registry import DATASETS
from mmsimclr.utils.config_check import check_dataset
from .pipelines import eval_pipeline_from

_SPLIT_TYPES = ('CIFAR10', 'CIFAR100', 'ImageNet', 'MNIST', 'FashionMNIST')


def innermost_dataset_cfg(dataset: dict) -> dict:
    """The dataset config inside dataset wrappers (``RepeatDataset``, ``ClassBalancedDataset``...: a config with a
    ``dataset`` key that is not itself a dataset with splits); the config object itself, not a copy."""
    while isinstance(dataset, dict) and 'dataset' in dataset and dataset.get('type') not in _SPLIT_TYPES:
        dataset = dataset['dataset']
    return dataset


def derive_dataset_cfg(train_dataset: dict, split: str, pipeline: Optional[List[dict]] = None) -> dict:
    """Config of the ``split`` (``'train'``, ``'test'``, ``'val'``) set of the dataset a training config reads.

    ``split`` replaces the ``split`` argument of datasets that have one (mmpretrain's ``CIFAR10``, ``ImageNet``),
    or the last folder of ``data_prefix`` when that folder is ``train``, ``val`` or ``test`` (``CustomDataset`` image
    folders ``{data_root}/train/<class>/*``). Dataset wrappers (``RepeatDataset``...) are unwrapped. ``pipeline`` defaults
    to :func:`eval_pipeline_from` of the training pipeline.

    Raises:
        ValueError: the test set cannot be located; the message says to pass an explicit dataset config.
    """
    cfg = copy.deepcopy(dict(innermost_dataset_cfg(train_dataset)))
    cfg['pipeline'] = pipeline if pipeline is not None else eval_pipeline_from(cfg.get('pipeline', []))
    cfg.pop('indices', None)
    if 'split' in cfg or cfg.get('type') in _SPLIT_TYPES:
        cfg['split'] = split
        return cfg
    prefix = cfg.get('data_prefix', '')
    key = None
    if isinstance(prefix, dict):
        key = 'img_path' if 'img_path' in prefix else next(iter(prefix), None)
        prefix = prefix.get(key, '') if key else ''
    head, tail = osp.split(str(prefix).rstrip('/'))
    if tail not in ('train', 'val', 'test') or cfg.get('ann_file'):
        if split == 'train':
            return cfg  # the training set itself
        raise ValueError(
            f'Cannot find the {split!r} set of dataset {cfg.get("type")} (data_root={cfg.get("data_root")!r}, '
            f'data_prefix={cfg.get("data_prefix")!r}): expected an image folder with data_prefix ".../train" '
            '(or val, test) or a dataset with a "split" argument. Pass the dataset explicitly, e.g. '
            f"KNNMonitorHook(test_dataset=dict(type='CustomDataset', data_root=..., data_prefix='{split}', "
            'pipeline=...)).')
    new_prefix = osp.join(head, split) if head else split
    if key is None:
        cfg['data_prefix'] = new_prefix
    else:
        cfg['data_prefix'] = dict(cfg['data_prefix'], **{key: new_prefix})
    return cfg


def build_subset(dataset_cfg: dict, num: Optional[int], seed: int = 0):
    """Build a dataset (config or object) and keep ``num`` random samples (all when ``num`` is None)."""
    if isinstance(dataset_cfg, dict):
        problems = check_dataset(dataset_cfg)  # (mmengine's own errors for missing data are cryptic)
        if problems:
            raise FileNotFoundError('Evaluation data: ' + ' '.join(problems))
        dataset = DATASETS.build(dataset_cfg)
    else:
        dataset = dataset_cfg
    if num is not None and num < len(dataset):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(dataset), size=num, replace=False)).tolist()
        dataset.get_subset_(keep)
    return dataset


def build_eval_loader(dataset, batch_size: int, num_workers: int):
    """Unshuffled dataloader over ``dataset`` with a distributed sampler (each rank gets its shard)."""
    return Runner.build_dataloader(
        dict(dataset=dataset, batch_size=batch_size, num_workers=num_workers,
             persistent_workers=False, sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
             collate_fn=dict(type='default_collate')))


def eval_dataset_cfgs(cfg, data_root: Optional[str] = None, pipeline: Optional[List[dict]] = None) -> dict:
    """``{'train': cfg, 'test': cfg}`` evaluation datasets (no augmentation) for a pretraining or linear config.

    With a ``test_dataloader`` (linear / supervised configs) its dataset and pipeline are used and the train set is
    its ``train`` split; otherwise both come from ``train_dataloader.dataset`` with the config's ``test_pipeline``
    (every pretraining base declares one), else :func:`eval_pipeline_from` of the training pipeline.
    ``data_root`` replaces the root of both.
    """
    test_loader = cfg.get('test_dataloader')
    if test_loader and test_loader.get('dataset'):
        test = copy.deepcopy(dict(test_loader['dataset']))
        pipe = pipeline if pipeline is not None else test.get('pipeline')
        test['pipeline'] = pipe
        out = dict(train=derive_dataset_cfg(test, 'train', pipe), test=test)
    elif cfg.get('train_dataloader') and cfg.train_dataloader.get('dataset'):
        ds = cfg.train_dataloader.dataset
        pipe = pipeline if pipeline is not None else cfg.get('test_pipeline')
        out = dict(train=derive_dataset_cfg(ds, 'train', pipe), test=derive_dataset_cfg(ds, 'test', pipe))
    else:
        raise ValueError('The config has neither test_dataloader nor train_dataloader to find the data from')
    if data_root is not None:
        for d in out.values():
            d['data_root'] = data_root
    return out
