# CIFAR-10 for linear evaluation: random crop (padding 4) + flip for training, the plain 32x32 image for testing.
# Data source as in cifar10_bs512_simclr.py: 'folder' ({data_root}/{train,test}/<class>/*) or 'cifar10'
# (mmpretrain's CIFAR10, downloads); move the folder with --cfg-options train_dataloader.dataset.data_root=PATH
# test_dataloader.dataset.data_root=PATH (val_dataloader is the test loader).
data_source = '{{$MMSIMCLR_CIFAR10_SOURCE:folder}}'
data_root = 'data/cifar10/'

if data_source == 'folder':
    _load = [dict(type='LoadImageFromFile')]
    train_set = dict(type='CustomDataset', data_root=data_root, data_prefix='train')
    test_set = dict(type='CustomDataset', data_root=data_root, data_prefix='test')
elif data_source == 'cifar10':
    _load = []
    train_set = dict(type='CIFAR10', data_root=data_root, split='train')
    test_set = dict(type='CIFAR10', data_root=data_root, split='test')
else:
    raise ValueError(f"data_source must be 'folder' or 'cifar10', got {data_source!r} "
                     '(configs/_base_/datasets/cifar10_bs512_linear.py or MMSIMCLR_CIFAR10_SOURCE)')

train_pipeline = _load + [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = _load + [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=512,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(**train_set, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=512,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**test_set, pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
