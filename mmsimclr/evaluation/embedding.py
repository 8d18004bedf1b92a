"""Building the datasets, loaders and models that embedding-based evaluation (kNN, t-SNE) needs.

Shared by :class:`mmsimclr.engine.hooks.KNNMonitorHook` and ``tools/analysis/{knn_eval,visualize_tsne}.py``.
"""
import copy
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np

from mmsimclr.registry import DATASETS

_SPLIT_TYPES = ('CIFAR10', 'CIFAR100', 'ImageNet', 'MNIST', 'FashionMNIST')


def eval_pipeline_from(train_pipeline: Sequence[dict]) -> List[dict]:
    """Evaluation pipeline for a training pipeline: its loading steps (``Load*``) then ``PackInputs``.

    Good for datasets whose images already have the network's input size (CIFAR); for ImageNet-like data pass an
    explicit pipeline with resize and centre crop.
    """
    loading = [copy.deepcopy(t) for t in train_pipeline if str(t.get('type', '')).startswith('Load')]
    return loading + [dict(type='PackInputs')]


def derive_dataset_cfg(train_dataset: dict, split: str, pipeline: Optional[List[dict]] = None) -> dict:
    """Config of the ``split`` (``'train'``, ``'test'``, ``'val'``) set of the dataset a training config reads.

    ``split`` replaces the ``split`` argument of datasets that have one (mmpretrain's ``CIFAR10``, ``ImageNet``),
    or the last folder of ``data_prefix`` when that folder is ``train``, ``val`` or ``test`` (``CustomDataset`` image
    folders ``{data_root}/train/<class>/*``). Dataset wrappers (``RepeatDataset``...) are unwrapped. ``pipeline`` defaults
    to :func:`eval_pipeline_from` of the training pipeline.

    Raises:
        ValueError: the test set cannot be located; the message says to pass an explicit dataset config.
    """
    cfg = copy.deepcopy(dict(train_dataset))
    while 'dataset' in cfg and cfg.get('type') not in _SPLIT_TYPES:  # dataset wrappers
        cfg = copy.deepcopy(dict(cfg['dataset']))
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


def check_data_exists(dataset_cfg: dict) -> None:
    """Raise a clear error when an image-folder dataset's folder is missing (mmengine's is cryptic)."""
    if dataset_cfg.get('type') in _SPLIT_TYPES:
        return  # those download or report by themselves
    prefix = dataset_cfg.get('data_prefix', '')
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path', '')
    folder = osp.join(dataset_cfg.get('data_root', '') or '', prefix or '')
    if folder and not osp.isdir(folder) and not dataset_cfg.get('ann_file'):
        raise FileNotFoundError(
            f'Image folder {folder!r} does not exist. Unpack the data there (CIFAR-10: `tar xzf cifar10-jpeg.tar.gz` '
            'gives cifar10/{train,test}/<class>/*.jpg) or point data_root at it, e.g. --data-root PATH in the tools '
            'or --cfg-options train_dataloader.dataset.data_root=PATH for training.')


def build_subset(dataset_cfg: dict, num: Optional[int], seed: int = 0):
    """Build a dataset (config or object) and keep ``num`` random samples (all when ``num`` is None)."""
    if isinstance(dataset_cfg, dict):
        check_data_exists(dataset_cfg)
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
    from mmengine.runner import Runner
    return Runner.build_dataloader(
        dict(dataset=dataset, batch_size=batch_size, num_workers=num_workers,
             persistent_workers=False, sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
             collate_fn=dict(type='default_collate')))


def eval_dataset_cfgs(cfg, data_root: Optional[str] = None, pipeline: Optional[List[dict]] = None) -> dict:
    """``{'train': cfg, 'test': cfg}`` evaluation datasets (no augmentation) for a pretraining or linear config.

    With a ``test_dataloader`` (linear / supervised configs) its dataset and pipeline are used and the train set is
    its ``train`` split; otherwise both come from ``train_dataloader.dataset`` with :func:`eval_pipeline_from`.
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
        out = dict(train=derive_dataset_cfg(ds, 'train', pipeline), test=derive_dataset_cfg(ds, 'test', pipeline))
    else:
        raise ValueError('The config has neither test_dataloader nor train_dataloader to find the data from')
    if data_root is not None:
        for d in out.values():
            d['data_root'] = data_root
    return out


def load_model(cfg, checkpoint: Optional[str], device: str = 'cpu'):
    """Build ``cfg.model`` and load ``checkpoint`` (``None`` or ``'random'``: keep the random initialisation).

    Works for SimCLR configs and for ``ImageClassifier`` (linear/supervised) configs given a SimCLR checkpoint
    (OpenMMLab's or ours): keys are matched by name, missing head/neck weights are allowed, but a checkpoint that
    fills no backbone weight is an error. ``Pretrained`` init configs are ignored (the checkpoint is loaded here).
    """
    import torch
    from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model

    from mmsimclr.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    for part in ('backbone', 'neck', 'head'):
        if isinstance(model_cfg.get(part), dict) and (model_cfg[part].get('init_cfg') or {}).get('type') == \
                'Pretrained':
            model_cfg[part].pop('init_cfg')
    model = MODELS.build(model_cfg)
    model.init_weights()
    if checkpoint and checkpoint != 'random':
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'Checkpoint {checkpoint} does not exist (pass a .pth file, or "random" for '
                                    'the randomly initialised network)')
        ckpt = _load_checkpoint(checkpoint, map_location='cpu')
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
        backbone_keys = {k for k in model.state_dict() if k.startswith('backbone.')}
        found = backbone_keys & set(state)
        if not found:
            raise KeyError(f'Checkpoint {checkpoint} has no weight for the backbone of this model (keys look like '
                           f'{sorted(state)[:3]}); is it for another architecture?')
        _load_checkpoint_to_model(model, state, strict=False)
        missing = sorted(backbone_keys - found)
        if missing:
            raise KeyError(f'Checkpoint {checkpoint} lacks {len(missing)} backbone weights, e.g. {missing[:3]}')
    return model.to(torch.device(device)).eval()


def load_for_evaluation(config: str, checkpoint: Optional[str], cfg_options: Optional[dict], logger_name: str):
    """What the evaluation tools share: registries, the config (with ``--cfg-options``), a logger and the model
    with ``checkpoint`` on the GPU if there is one. Returns ``(cfg, logger, model)``."""
    import torch
    from mmengine.config import Config
    from mmengine.logging import MMLogger

    from mmsimclr.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    if not osp.isfile(config):
        raise FileNotFoundError(f'Config file {config} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    logger = MMLogger.get_instance(logger_name, log_level='INFO') if not MMLogger.check_instance_created(
        logger_name) else MMLogger.get_instance(logger_name)
    model = load_model(cfg, checkpoint, 'cuda' if torch.cuda.is_available() else 'cpu')
    return cfg, logger, model
