# The README's "progress without labels" demonstration (CPU-sized): the 50,000 CIFAR-10 training images as an
# unlabelled folder (UnlabeledImageFolder reads data/cifar10/train/**: the class folders are just folders, no label
# reaches training), 2000 of them held out for LabelFreeMonitorHook every epoch; next to it a kNN monitor that uses
# the labels only to show what the label-free measures track (memory bank: 10,000 training images, queries: 2,000
# test images). CIFAR ResNet-18 at 1/8 width (as make demo, for a 2-core CPU), batch 256, lr = 0.075 x sqrt(256) =
# 1.2 (square-root rule), 1 warm-up epoch + cosine, 8 epochs, T = 0.2 (a short schedule, as make demo).
_base_ = ['./simclr_r18_1xb512-coslr-200e_folder.py']

cifar_root = 'data/cifar10/'
model = dict(
    channels_last=True,
    backbone=dict(stem_channels=8, base_channels=8),
    neck=dict(in_channels=64, hid_channels=1024, out_channels=128),
    head=dict(temperature=0.2))
train_dataloader = dict(batch_size=256, num_workers=1, dataset=dict(data_root=cifar_root + 'train'))
optim_wrapper = dict(optimizer=dict(lr=1.2))
auto_scale_lr = dict(base_batch_size=256, rule='sqrt')
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=7, by_epoch=True, begin=1, end=8, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=8)
knn_pipeline = [
    dict(type='LoadImageColor'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False, interpolation='area'),
    dict(type='PackInputs'),
]
custom_hooks = [
    dict(type='KNNMonitorHook', interval=1, k=200, temperature=0.1, batch_size=500, num_workers=1,
         eval_before_train=True, num_train=10000, num_test=2000,
         train_dataset=dict(type='CustomDataset', data_root=cifar_root, data_prefix='train', pipeline=knn_pipeline),
         test_dataset=dict(type='CustomDataset', data_root=cifar_root, data_prefix='test', pipeline=knn_pipeline)),
    dict(type='LabelFreeMonitorHook', interval=1, num_images=2000, batch_size=500, num_workers=1),
]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=1, max_keep_ckpts=2))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
