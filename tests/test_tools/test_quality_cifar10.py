"""tools/benchmark/quality_cifar10.py trains the configuration its README figures were measured with: the CIFAR-10
recipe's views and temperature on the demo's loader and hooks, whatever the demo recipe itself has moved to."""
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def quality():
    path = osp.join(ROOT, 'tools', 'benchmark', 'quality_cifar10.py')
    spec = importlib.util.spec_from_file_location('quality_cifar10', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_config_keeps_the_recipe_views_and_temperature(quality, tmp_path):
    args = quality.parse_args(['--work-dir', str(tmp_path), '--single', 'mmsimclr', '--width', '16',
                               '--batch-size', '128', '--epochs', '30'])
    cfg = quality.build_config(args, str(tmp_path / 'data'))
    recipe = Config.fromfile(osp.join(ROOT, 'configs', 'simclr_r18_1xb512-coslr-200e_cifar10.py'))
    assert cfg.train_dataloader.dataset.pipeline == recipe.train_dataloader.dataset.pipeline  # crops of 8-100%
    assert cfg.model.head.temperature == recipe.model.head.temperature == 0.5
    assert cfg.model.channels_last is False
    neck = cfg.model.neck
    assert (cfg.model.backbone.base_channels, neck.in_channels, neck.hid_channels) == (16, 128, 1024)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.075 * 128 ** 0.5, abs=1e-4)
    assert cfg.train_dataloader.dataset.data_root == str(tmp_path / 'data') and cfg.train_cfg.max_epochs == 30
