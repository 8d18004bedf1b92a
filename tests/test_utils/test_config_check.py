"""Config validation before any work: each error names the key and the fix."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmsimclr.utils.config_check import (ConfigError, check_config, check_data, check_model, check_name,
                                         check_types, name_values)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')


@pytest.fixture
def tiny_cfg(tiny_data):
    cfg = Config.fromfile(TINY)
    cfg.train_dataloader.dataset.data_root = tiny_data
    return cfg


def test_tiny_config_passes(tiny_cfg):
    check_config(tiny_cfg, TINY, Config.fromfile(TINY))


def test_unknown_type_is_named_with_a_suggestion(tiny_cfg):
    tiny_cfg.model.backbone.type = 'ResNet_CIFRA'
    tiny_cfg.train_dataloader.dataset.pipeline[0].type = 'LoadImageColour'
    problems = check_types(tiny_cfg)
    assert len(problems) == 2
    assert problems[0].startswith("model.backbone.type: unknown type 'ResNet_CIFRA'")
    assert "'ResNet_CIFAR'" in problems[0]
    assert problems[1].startswith('train_dataloader.dataset.pipeline.0.type') and "'LoadImageColor'" in problems[1]
    with pytest.raises(ConfigError, match='model.backbone.type'):
        check_config(tiny_cfg)


def test_name_values_of_pretraining_and_benchmark_names():
    assert name_values('simclr_r50_16xb256-coslr-200e_in1k.py') == (16, 256, 200)
    assert name_values('resnet50_simclr-800e-pre_8xb512-linear-coslr-90e_in1k.py') == (8, 512, 90)
    assert name_values('my_config.py') == (None, None, None)


def test_file_that_contradicts_its_name(tiny_cfg, recwarn):
    problems = check_name('simclr_r18_1xb32-coslr-5e_tiny.py', Config.fromfile(TINY))
    assert [p.split(':')[0] for p in problems] == ['train_dataloader.batch_size', 'train_cfg.max_epochs']
    assert '1xb32' in problems[0] and '5e' in problems[1]
    # a value changed on the command line is deliberate: a warning, not an error
    tiny_cfg.train_cfg.max_epochs = 3
    assert check_name(TINY, Config.fromfile(TINY), tiny_cfg) == []
    assert any('max_epochs=3' in str(w.message) for w in recwarn)


def test_shipped_configs_agree_with_their_names_and_types():
    for path in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True):
        if '_base_' in path:
            continue
        cfg = Config.fromfile(path)
        assert check_types(cfg) == [] and check_name(path, cfg) == [], path


def test_temperature_must_be_positive(tiny_cfg):
    tiny_cfg.model.head.temperature = 0.0
    problems = check_model(tiny_cfg)
    assert len(problems) == 1 and problems[0].startswith('model.head.temperature: 0.0 must be > 0')


def test_neck_in_channels_checked_before_training(tiny_cfg):
    tiny_cfg.model.neck.in_channels = 2048  # the tiny config's 1/8-width ResNet-18 gives 64
    problems = check_model(tiny_cfg)
    assert problems == ['model.neck.in_channels: 2048, but its input has 64 channels. '
                        'Set model.neck.in_channels=64.']


def test_train_tool_stops_before_any_work(tiny_data, tmp_path):
    from tools.train import main
    work = tmp_path / 'work'
    with pytest.raises(SystemExit) as info:
        main([TINY, '--work-dir', str(work), '--cfg-options', f'train_dataloader.dataset.data_root={tiny_data}',
              'model.neck.type=NonLinearNek', 'model.head.temperature=-1'])
    assert 'Config error' in str(info.value) and 'model.neck.type' in str(info.value)
    assert not work.exists()


# ---------------------------------------------------------------------------------------------- ImageNet layout
IN1K = osp.join(ROOT, 'configs', 'simclr_r50_16xb256-coslr-200e_in1k.py')


def _imagenet_folder(root, classes=('n01440764', 'n01443537')):
    """``root/train/<synset>/x.JPEG`` (one 8x8 image per class), no ``meta/``."""
    import numpy as np
    from PIL import Image
    for name in classes:
        (root / 'train' / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'train' / name / 'x.JPEG')
    return root


def test_imagenet_without_meta_list_is_caught_before_mmpretrain_asserts(tmp_path):
    from mmpretrain.datasets import ImageNet
    root = _imagenet_folder(tmp_path / 'imagenet')
    cfg = Config.fromfile(IN1K)
    cfg.train_dataloader.dataset.data_root = str(root)
    # what happens without the check: mmpretrain scans every image, then asserts on the class count
    with pytest.raises(AssertionError, match=r'number of subfolders \(2\)'):
        ImageNet(data_root=str(root), split='train')
    problems = check_data(cfg)
    assert len(problems) == 1, problems
    msg = problems[0]
    assert msg.startswith('train_dataloader.dataset: ')
    assert str(root / 'meta' / 'train.txt') in msg and 'does not exist' in msg
    assert 'has 2 sub-folder(s) where ImageNet needs 1000' in msg
    assert 'train_dataloader.dataset.ann_file' in msg and 'CustomDataset' in msg

    # with the annotation list in place, the check passes and mmpretrain reads it
    (root / 'meta').mkdir()
    (root / 'meta' / 'train.txt').write_text('n01440764/x.JPEG 0\nn01443537/x.JPEG 1\n')
    assert check_data(cfg) == []
    assert len(ImageNet(data_root=str(root), split='train')) == 2


def test_missing_ann_file_is_named_with_its_absolute_path_and_the_fix(tmp_path, monkeypatch):
    _imagenet_folder(tmp_path / 'data' / 'imagenet')
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(IN1K)  # data_root='data/imagenet/', relative to the working directory
    cfg.train_dataloader.dataset.ann_file = 'meta/train_subset.txt'
    problems = check_data(cfg)
    assert len(problems) == 1, problems
    assert problems[0].startswith('train_dataloader.dataset.ann_file: data/imagenet/meta/train_subset.txt '
                                  f'(absolute: {tmp_path}/data/imagenet/meta/train_subset.txt) does not exist.')
    assert '--cfg-options train_dataloader.dataset.ann_file=PATH' in problems[0]


def test_relative_data_root_is_shown_with_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(IN1K)
    problems = check_data(cfg)
    assert problems == [f'train_dataloader.dataset.data_root: folder data/imagenet/ (absolute: '
                        f'{tmp_path}/data/imagenet) does not exist. Point it at your data with --cfg-options '
                        'train_dataloader.dataset.data_root=PATH.']


def test_folder_dataset_without_fixed_classes_needs_no_annotation(tiny_cfg):
    # the tiny config's CustomDataset takes its classes from the folders: any number of them is fine
    assert check_data(tiny_cfg) == []
