# A tiny SimCLR run for smoke tests and the quick demo: CIFAR ResNet-18 on an image folder, 2 epochs of 16 images.
# data_root must hold train/<class>/*.jpg (tools/make_tiny_dataset.py writes one).
_base_ = [
    '_base_/models/simclr_r18_cifar.py',
    '_base_/datasets/cifar10_folder_simclr.py',
    '_base_/default_runtime.py',
]

data_root = 'data/tiny/'
model = dict(neck=dict(hid_channels=128, out_channels=32))
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
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
