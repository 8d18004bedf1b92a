"""Every config loads, builds its model and its pipeline, and agrees with its file name."""
import ast
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose

from mmsimclr.registry import MODELS, TRANSFORMS
from mmsimclr.utils.config_check import check_name, name_values

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ALL_FILES = sorted(glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))
CONFIGS = [p for p in ALL_FILES if '_base_' not in p]


def name_of(path):
    return osp.relpath(path, osp.join(ROOT, 'configs'))


def test_there_are_configs():
    names = {name_of(p) for p in CONFIGS}
    assert {'simclr_r50_16xb256-coslr-200e_in1k.py', 'simclr_r50_16xb256-coslr-800e_in1k.py',
            'benchmarks/resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k.py',
            'benchmarks/resnet50_simclr-800e-pre_8xb512-linear-coslr-90e_in1k.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=name_of)
def test_config_builds_and_matches_its_name(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmsimclr'
    assert check_name(path, cfg) == []  # batch per GPU, epochs and auto_scale_lr agree with the file name
    gpus, batch, epochs = name_values(path)
    assert None not in (gpus, batch, epochs), 'the name gives GPUs x batch (NxbB) and epochs (Ee)'
    assert cfg.train_dataloader.batch_size == batch and cfg.train_cfg.max_epochs == epochs
    # schedules end where training ends
    assert max(s.get('end', epochs) for s in cfg.param_scheduler) == epochs

    # SimCLRv2's configs (up to 877M parameters) build on the meta device: shapes and parameter counts without the
    # memory and initialisation time (ResNetSK supports it; mmpretrain's ResNet calls .item() in __init__)
    with torch.device('meta' if name_of(path).startswith('simclrv2/') else 'cpu'):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    pipeline = Compose([TRANSFORMS.build(t) for t in cfg.train_dataloader.dataset.pipeline])
    assert len(pipeline.transforms) == len(cfg.train_dataloader.dataset.pipeline)


@pytest.mark.parametrize('path', ALL_FILES, ids=name_of)
def test_config_is_pure_data(path):
    """Configs hold values only: assignments (and inheritance), no if / raise / import / def (a data source or a
    variant is chosen by inheriting its base file)."""
    tree = ast.parse(open(path).read(), path)
    for node in tree.body:
        assert isinstance(node, ast.Assign), f'{name_of(path)}:{node.lineno}: {type(node).__name__} in a config'
        calls = [n.func for n in ast.walk(node) if isinstance(n, ast.Call)]
        assert all(isinstance(f, ast.Name) and f.id == 'dict' for f in calls), \
            f'{name_of(path)}:{node.lineno}: a call other than dict(...)'


@pytest.mark.parametrize('epochs', [200, 800])
def test_imagenet_pretraining_recipe(epochs):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'simclr_r50_16xb256-coslr-{epochs}e_in1k.py'))
    assert cfg.model.backbone.depth == 50 and cfg.model.backbone.zero_init_residual
    assert cfg.model.backbone.norm_cfg.type == 'GlobalBN' and cfg.model.neck.norm_cfg.type == 'GlobalBN'
    neck = cfg.model.neck
    assert (neck.in_channels, neck.hid_channels, neck.out_channels) == (2048, 2048, 128)
    assert cfg.model.head.temperature == 0.1
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('LARS', 4.8, 0.9, 1e-6)
    assert opt.lr == pytest.approx(0.3 * 16 * 256 / 256)
    assert cfg.train_dataloader.batch_size == 256  # really 256 per GPU (mmpretrain's 800e config uses 32)
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and (warmup.begin, warmup.end) == (0, 10)
    assert cosine.type == 'CosineAnnealingLR' and (cosine.begin, cosine.end) == (10, epochs)
    assert cosine.T_max == epochs - 10


def test_norm_and_bias_excluded_by_kind():
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'simclr_r50_16xb256-coslr-200e_in1k.py'))
    model = MODELS.build(cfg.model)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    kinds = {}
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            is_norm = isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
            kinds[id(p)] = (is_norm or name == 'bias', f'{module_name}.{name}')
    seen = 0
    for group in optimizer.param_groups:
        for p in group['params']:
            excluded, name = kinds[id(p)]
            seen += 1
            if excluded:
                assert group['weight_decay'] == 0 and group.get('lars_exclude'), name
            else:
                assert group['weight_decay'] == 1e-6 and not group.get('lars_exclude', False), name
    assert seen == len(list(model.parameters()))
    assert len(optimizer.param_groups) == 2  # merged, not one group per parameter


def test_linear_evaluation_recipe():
    cfg = Config.fromfile(osp.join(
        ROOT, 'configs', 'benchmarks', 'resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k.py'))
    assert cfg.model.backbone.frozen_stages == 4
    assert cfg.model.backbone.init_cfg.type == 'Pretrained' and cfg.model.backbone.init_cfg.prefix == 'backbone.'
    assert cfg.optim_wrapper.optimizer.type == 'LARS' and cfg.optim_wrapper.optimizer.lr == 1.6
    assert cfg.train_cfg.max_epochs == 90 and cfg.train_dataloader.batch_size == 512
    assert cfg.train_dataloader.dataset.data_root.rstrip('/') == 'data/imagenet'
    model = MODELS.build(cfg.model)
    model.train()
    frozen = [n for n, p in model.named_parameters() if n.startswith('backbone') and p.requires_grad]
    assert not frozen
    assert all(p.requires_grad for p in model.head.parameters())
