# Your own small images (tiles, thumbnails, icons), unlabelled: as folder_bs256_simclr.py (every image under
# data_root at any depth, file list cached in the work dir, 2000 held out for LabelFreeMonitorHook), with the
# CIFAR-10 loader and views of the paper (cifar10_bs512_simclr.py: batch 512, colour distortion s = 0.5, no blur) at
# img_size x img_size. img_size is the one setting for the image size: the crops and the evaluation squash both use
# it (a copy of the top-level config with another value trains at that size).
_base_ = ['./cifar10_bs512_simclr.py']

img_size = 32
data_root = 'data/my_images/'
view_pipeline = [
    dict(type='RandomResizedCropFlip', size=img_size, scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.), flip_prob=0.5),
    dict(type='ColorDistortion', strength=0.5, jitter_prob=0.8, gray_prob=0.2),
]
train_pipeline = [
    dict(type='LoadImageColor'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
# evaluation: the whole image squashed to the network's input (as CIFAR's 32x32 images already are)
test_pipeline = [
    dict(type='LoadImageColor'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=False, interpolation='area'),
    dict(type='PackInputs'),
]
decode_pipeline = test_pipeline
train_dataloader = dict(
    dataset=dict(_delete_=True, type='UnlabeledImageFolder', data_root=data_root, holdout=2000,
                 pipeline=train_pipeline))

custom_hooks = [dict(type='LabelFreeMonitorHook', interval=10, num_images=2000, batch_size=512, num_workers=8)]
