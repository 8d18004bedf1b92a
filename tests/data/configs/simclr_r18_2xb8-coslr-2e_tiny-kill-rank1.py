# Test-only (tests/test_tools/test_elastic_restart.py): the tiny config at 1/8 width for 2 CPU ranks of batch 8
# (64 images: 4 iterations an epoch), a checkpoint every epoch, deterministic data order and augmentation (one
# loader worker per rank, seeded by mmengine from the seed and the rank, restarted every epoch), and a hook that
# SIGKILLs rank 1 after iteration 6 (epoch 2, after epoch_1.pth is complete) in torchrun's first attempt only.
# data_root: --cfg-options train_dataloader.dataset.data_root=DIR
_base_ = ['../../../configs/simclr_r18_1xb16-coslr-2e_tiny.py']

model = dict(
    backbone=dict(stem_channels=8, base_channels=8),
    neck=dict(in_channels=64, hid_channels=32, out_channels=16))
train_dataloader = dict(batch_size=8, num_workers=1, persistent_workers=False)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=-1))
randomness = dict(seed=0, deterministic=True)
custom_imports = dict(imports=['tests.test_tools.kill_once_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='KillOnceHook', rank=1, iteration=6)]
