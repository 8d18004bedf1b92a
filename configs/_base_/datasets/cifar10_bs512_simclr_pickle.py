# CIFAR-10 for SimCLR pretraining from mmpretrain's CIFAR10 dataset (the python pickles, downloaded into data_root
# where there is internet) instead of an image folder; views, loader and kNN monitor as in cifar10_bs512_simclr.py.
_base_ = ['./cifar10_bs512_simclr.py']

train_dataloader = dict(dataset=dict(
    _delete_=True,
    type='CIFAR10',
    data_root={{_base_.data_root}},
    split='train',
    # the pickles hold decoded images: no loading step
    pipeline=[dict(type='MultiView', num_views=2, transforms=[{{_base_.view_pipeline}}]), dict(type='PackInputs')]))
test_pipeline = [
    dict(type='Resize', scale=(32, 32), keep_ratio=False, interpolation='area'),
    dict(type='PackInputs'),
]
