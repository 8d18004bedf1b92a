# CIFAR-10 for SimCLR pretraining (batch 512, SimCLR views of cifar10_folder_simclr.py) and the online kNN monitor.
#
# Where the images come from, one variable (edit it, or set MMSIMCLR_CIFAR10_SOURCE without editing):
#   'folder'  : an image folder {data_root}/train/<class>/* and {data_root}/test/<class>/*
#               (e.g. `tar xzf cifar10-jpeg.tar.gz -C data/`); move it with
#               --cfg-options train_dataloader.dataset.data_root=PATH (the kNN sets follow the train set)
#   'cifar10' : mmpretrain's CIFAR10 (the python pickles, downloaded into data_root where there is internet)
_base_ = ['./cifar10_folder_simclr.py']

data_source = '{{$MMSIMCLR_CIFAR10_SOURCE:folder}}'
data_root = 'data/cifar10/'

if data_source == 'folder':
    train_dataloader = dict(dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train'))
elif data_source == 'cifar10':
    train_dataloader = dict(dataset=dict(
        _delete_=True,
        type='CIFAR10',
        data_root=data_root,
        split='train',
        pipeline=[
            dict(type='MultiView', num_views=2, transforms=[{{_base_.view_pipeline}}]),
            dict(type='PackInputs'),
        ]))
else:
    raise ValueError(f"data_source must be 'folder' or 'cifar10', got {data_source!r} "
                     '(configs/_base_/datasets/cifar10_bs512_simclr.py or MMSIMCLR_CIFAR10_SOURCE)')

train_dataloader.update(batch_size=512, num_workers=8, persistent_workers=True, pin_memory=True, drop_last=True)

# weighted kNN top-1 (k = 200, T = 0.1) of the backbone features on the test set, memory bank = the train set
# (datasets derived from train_dataloader.dataset: same source and root, no augmentation)
custom_hooks = [dict(type='KNNMonitorHook', interval=10, k=200, temperature=0.1, batch_size=512, num_workers=8)]
