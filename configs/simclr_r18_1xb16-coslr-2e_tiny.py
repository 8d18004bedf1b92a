# A tiny SimCLR run for smoke tests: CIFAR ResNet-18 layout at 1/8 width (8 channels in the first stage, 64-d
# features), on an image folder, 2 epochs of batch 16.
# data_root must hold train/<class>/*.jpg (tools/make_tiny_dataset.py writes one).
_base_ = [
    '_base_/models/simclr_r18_cifar.py',
    '_base_/datasets/cifar10_bs512_simclr.py',
    '_base_/default_runtime.py',
]

data_root = 'data/tiny/'
model = dict(
    backbone=dict(stem_channels=8, base_channels=8),
    neck=dict(in_channels=64, hid_channels=64, out_channels=32))
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(data_root=data_root))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=0.3, momentum=0.9, weight_decay=1e-6),
    constructor='SimCLROptimWrapperConstructor')
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=1, by_epoch=True, begin=1, end=2, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=3))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
custom_hooks = []  # no kNN monitor
