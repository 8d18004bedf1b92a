# CIFAR-10 for linear evaluation from mmpretrain's CIFAR10 dataset (python pickles: decoded images, so the
# pipelines have no loading step); loaders as in cifar10_bs512_linear.py.
_base_ = ['./cifar10_bs512_linear.py']

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(dataset=dict(
    _delete_=True, type='CIFAR10', data_root={{_base_.data_root}}, split='train', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    _delete_=True, type='CIFAR10', data_root={{_base_.data_root}}, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader
