# CIFAR-10 as an image folder: {data_root}/train/<class>/*.jpg and {data_root}/test/<class>/*.jpg
# (override with --cfg-options train_dataloader.dataset.data_root=PATH)
dataset_type = 'CustomDataset'
data_root = 'data/cifar10/'

# SimCLR views for CIFAR-10 (paper, Appendix B.9): colour distortion strength s = 0.5, no blur
view_pipeline = [
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.08, 1.0), backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomApply',
        transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)],
        prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=512,
    num_workers=2,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='train', pipeline=train_pipeline))
