"""Semi-supervised (1% / 10% ImageNet) and transfer fine-tuning configs: the paper's recipe, and a few iterations of
tools/train.py on tiny data (ResNet-18 at 32x32, batch 8) that start from a SimCLR checkpoint, train the whole
network and report top-1 / top-5."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmsimclr.registry import MODELS
from tools.train import main as train

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCH = osp.join(ROOT, 'configs', 'benchmarks')
ONE = osp.join(BENCH, 'resnet50_simclr-200e-pre_16xb256-finetune-1pct-60e_in1k.py')
TEN = osp.join(BENCH, 'resnet50_simclr-200e-pre_16xb256-finetune-10pct-30e_in1k.py')
FOLDER = osp.join(BENCH, 'resnet50_simclr-200e-pre_1xb64-finetune-100e_folder.py')


@pytest.mark.parametrize('path,epochs,ann', [(ONE, 60, 'meta/train_1percent.txt'),
                                             (TEN, 30, 'meta/train_10percent.txt')])
def test_semi_supervised_recipe(path, epochs, ann):
    cfg = Config.fromfile(path)
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.nesterov, opt.weight_decay) == ('LARS', 0.8, 0.9, True, 0.0)
    assert opt.lr == pytest.approx(0.05 * 16 * 256 / 256)
    assert cfg.train_dataloader.batch_size * 16 == 4096 and cfg.train_cfg.max_epochs == epochs
    assert [s.type for s in cfg.param_scheduler] == ['CosineAnnealingLR'], 'no warm-up'
    data = cfg.train_dataloader.dataset
    assert (data.type, data.data_root.rstrip('/'), data.split, data.ann_file) == ('ImageNet', 'data/imagenet',
                                                                                  'train', ann)
    assert [t.type for t in data.pipeline] == ['LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'PackInputs']
    test = [t for t in cfg.test_dataloader.dataset.pipeline]
    assert (test[1].scale, test[2].crop_size) == (256, 224) and cfg.test_evaluator.topk == (1, 5)
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.' and cfg.model.backbone.frozen_stages == -1
    model = MODELS.build(cfg.model)
    model.train()
    assert all(p.requires_grad for p in model.parameters()) and model.backbone.norm_eval is False


def test_folder_recipe():
    cfg = Config.fromfile(FOLDER)
    assert [t.type for t in cfg.train_dataloader.dataset.pipeline] == ['LoadImageFromFile', 'RandomResizedCrop',
                                                                       'RandomFlip', 'PackInputs']
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'SGD' and opt.nesterov and opt.momentum == 0.9
    assert cfg.train_dataloader.dataset.type == 'CustomDataset' and cfg.model.backbone.frozen_stages == -1


@pytest.fixture(scope='module')
def simclr_r18_checkpoint(tmp_path_factory):
    """A SimCLR-style checkpoint of a ResNet-18 backbone (``backbone.*`` keys, as SimCLR training writes them)."""
    torch.manual_seed(0)
    backbone = MODELS.build(dict(type='ResNet', depth=18, out_indices=(3, )))
    path = str(tmp_path_factory.mktemp('simclr') / 'simclr_r18.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in backbone.state_dict().items()}}, path)
    return path


SMALL = ['model.backbone.depth=18', 'model.head.in_channels=512', 'train_dataloader.batch_size=8',
         'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
         'train_dataloader.dataset.pipeline.1.scale=32', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=100',
         'param_scheduler.0.T_max=1', 'param_scheduler.0.end=1', 'default_hooks.logger.interval=1',
         'default_hooks.checkpoint.interval=1'] + [
             f'{loader}.{key}' for loader in ('val_dataloader', 'test_dataloader')
             for key in ('batch_size=16', 'dataset.indices=32', 'num_workers=0', 'persistent_workers=False', 'dataset.pipeline.1.scale=36',
                         'dataset.pipeline.2.crop_size=32')]
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def run_and_check(config, options, checkpoint, work_dir, iterations, top_k=5):
    runner = train([config, '--work-dir', work_dir, '--cfg-options', f'model.backbone.init_cfg.checkpoint={checkpoint}']
                   + SMALL + options)
    assert runner.iter == iterations
    # the loop validates after the last epoch; RuntimeInfoHook keeps the numbers as 'val/<metric>'
    metrics = {k[len('val/'):]: v.current() for k, v in runner.message_hub.log_scalars.items()
               if k.startswith('val/')}
    assert {'accuracy/top1', f'accuracy/top{top_k}'} <= set(metrics)
    assert 0 <= metrics['accuracy/top1'] <= metrics[f'accuracy/top{top_k}'] <= 100
    # started from the SimCLR weights, and the whole backbone (first and last layers too) was trained
    start = torch.load(checkpoint, weights_only=True)['state_dict']
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    for name in ('conv1.weight', 'layer4.1.conv2.weight'):
        now = model.backbone.state_dict()[name].cpu()
        assert not torch.equal(now, start[f'backbone.{name}']), f'{name} was not trained'
        similarity = torch.cosine_similarity(now.flatten(), start[f'backbone.{name}'].flatten(), dim=0)
        assert similarity > 0.9, f'{name} did not start from the checkpoint'  # unrelated weights: about 0
    return metrics


@pytest.mark.parametrize('config,iterations', [(ONE, 1), (TEN, 2)], ids=['1pct', '10pct'])
def test_semi_supervised_finetune_runs(config, iterations, tiny_imagenet, simclr_r18_checkpoint, tmp_path):
    options = [f'{loader}.dataset.data_root={tiny_imagenet}' for loader in LOADERS]
    run_and_check(config, options, simclr_r18_checkpoint, str(tmp_path), iterations)


def test_folder_finetune_runs_and_checks_num_classes(tiny_data, simclr_r18_checkpoint, tmp_path):
    options = [f'{loader}.dataset.data_root={tiny_data}' for loader in LOADERS]
    options += ['train_dataloader.dataset.indices=8']
    with pytest.raises(ValueError, match='model.head.num_classes=4'):
        train([FOLDER, '--work-dir', str(tmp_path / 'wrong'), '--cfg-options',
               f'model.backbone.init_cfg.checkpoint={simclr_r18_checkpoint}'] + SMALL + options)
    options += ['model.head.num_classes=4', 'model.data_preprocessor.num_classes=4', 'test_evaluator.topk=(1,3)',
                'val_evaluator.topk=(1,3)']
    run_and_check(FOLDER, options, simclr_r18_checkpoint, str(tmp_path / 'ok'), 1, top_k=3)  # 4 classes: no top-5
