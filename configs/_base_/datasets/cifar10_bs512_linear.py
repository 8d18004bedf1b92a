# CIFAR-10 for linear evaluation from an image folder ({data_root}/{train,test}/<class>/*): random crop (padding 4)
# + flip for training, the plain 32x32 image for testing. Move the folder with --cfg-options
# train_dataloader.dataset.data_root=PATH test_dataloader.dataset.data_root=PATH (val_dataloader is the test loader).
# mmpretrain's CIFAR10 (python pickles) instead: cifar10_bs512_linear_pickle.py.
data_root = 'data/cifar10/'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=512,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=512,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='test', pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
