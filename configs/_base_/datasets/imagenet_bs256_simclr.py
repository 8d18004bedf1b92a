# ImageNet in mmpretrain's layout: data/imagenet/{train,val}/..., data/imagenet/meta/{train,val}.txt
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'

# SimCLR views (paper, Appendix A): random resized crop + flip, colour distortion of strength s = 1
# (jitter 0.8s/0.8s/0.8s/0.2s with p = 0.8, grayscale p = 0.2) and Gaussian blur p = 0.5, sigma in [0.1, 2.0]
view_pipeline = [
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.08, 1.0), backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomApply',
        transforms=[dict(type='ColorJitter', brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)],
        prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.5),
]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline))
