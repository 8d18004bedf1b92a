"""A config written the mmpretrain way -- ``default_scope='mmpretrain'``, ``custom_imports`` naming mmsimclr,
``mmsimclr.SimCLR`` with unprefixed part names and mmpretrain's loss spelling, mmpretrain's data pipeline and LARS --
trains with mmengine's Runner, and its checkpoint loads back (``load_from`` and ``get_model``)."""
import os.path as osp
from collections import OrderedDict

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmsimclr.models.heads import ContrastiveHead
from mmsimclr.models.necks import NonLinearNeck
from mmsimclr.models import SimCLR
from mmsimclr.utils.checkpoint import safe_torch_load

CONFIG = '''
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmsimclr'], allow_failed_imports=False)
model = dict(
    type='mmsimclr.SimCLR',
    data_preprocessor=dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), to_rgb=True),
    backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8, norm_cfg=dict(type='BN')),
    neck=dict(type='NonLinearNeck', in_channels=64, hid_channels=16, out_channels=8, num_layers=2,
              with_avg_pool=True, norm_cfg=dict(type='BN1d')),
    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'), temperature=0.1))
view_pipeline = [dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.2, 1.0)),
                 dict(type='RandomFlip', prob=0.5)]
train_dataloader = dict(
    batch_size=4, num_workers=0, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CustomDataset', data_root='{data_root}', data_prefix='train', pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
        dict(type='PackInputs')]))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='LARS', lr=0.1, momentum=0.9, weight_decay=1e-6))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                     logger=dict(type='LoggerHook', interval=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
'''


def test_mmpretrain_style_config_trains_and_loads(tiny_data, tmp_path, monkeypatch):
    # Runner and get_model make the config's default scope the current one; give the session's back afterwards
    monkeypatch.setattr(DefaultScope, '_instance_dict', OrderedDict(DefaultScope._instance_dict))
    path = tmp_path / 'simclr_mmpretrain_style.py'
    path.write_text(CONFIG.replace('{data_root}', tiny_data))
    cfg = Config.fromfile(str(path))  # imports custom_imports, as mmpretrain's tools/train.py does
    cfg.work_dir = str(tmp_path / 'work')

    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert type(model) is SimCLR and type(model.neck) is NonLinearNeck and type(model.head) is ContrastiveHead
    assert DefaultScope.get_current_instance().scope_name == 'mmpretrain'
    start = {k: v.clone() for k, v in model.state_dict().items()}
    runner.train()
    assert runner.iter == 2
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))

    ckpt_path = osp.join(cfg.work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt_path)
    saved = safe_torch_load(ckpt_path, map_location='cpu', name=ckpt_path)['state_dict']  # weights-only
    assert not torch.equal(saved['neck.fc0.weight'], start['neck.fc0.weight'])  # trained

    # load_from in a fresh runner of the same config
    cfg2 = Config.fromfile(str(path))
    cfg2.work_dir, cfg2.load_from = str(tmp_path / 'work2'), ckpt_path
    runner2 = Runner.from_cfg(cfg2)
    runner2.load_or_resume()
    for key, value in runner2.model.state_dict().items():
        assert torch.equal(value, saved[key]), key

    # the inference API, from the config file
    from mmsimclr.apis import get_model
    loaded = get_model(str(path), pretrained=ckpt_path, device='cpu')
    assert type(loaded) is SimCLR and type(loaded.head) is ContrastiveHead
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, saved[key]), key
    with torch.no_grad():
        out = loaded(torch.randn(2, 3, 32, 32), mode='predict')
    assert out[0].feat.shape == (64, ) and out[0].proj.shape == (8, )
