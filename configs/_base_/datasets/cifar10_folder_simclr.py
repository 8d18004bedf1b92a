# CIFAR-10 as an image folder: {data_root}/train/<class>/*.jpg and {data_root}/test/<class>/*.jpg
# (override with --cfg-options train_dataloader.dataset.data_root=PATH)
dataset_type = 'CustomDataset'
data_root = 'data/cifar10/'

# SimCLR views for CIFAR-10 (paper, Appendix B.9): as ImageNet's but colour distortion strength s = 0.5, no blur.
# Batched augmentation on the training device instead: cifar10_folder_simclr_batchaug.py.
view_pipeline = [
    dict(type='RandomResizedCropFlip', size=32, scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.), flip_prob=0.5),
    dict(type='ColorDistortion', strength=0.5, jitter_prob=0.8, gray_prob=0.2),
]

train_pipeline = [
    dict(type='LoadImageColor'),
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
