# ImageNet in mmpretrain's layout: data/imagenet/{train,val}/..., data/imagenet/meta/{train,val}.txt; evaluation
# (test_pipeline): imagenet_eval.py
_base_ = ['imagenet_eval.py']
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'

# SimCLR views (paper, Appendix A): random resized crop (area U[0.08, 1], aspect ratio log-U[3/4, 4/3]) + flip
# p = 0.5, colour distortion of strength s = 1 (jitter 0.8s/0.8s/0.8s/0.2s in random order with p = 0.8, grayscale
# p = 0.2) and Gaussian blur p = 0.5 (kernel 10% of the side, sigma U[0.1, 2.0]). mmsimclr's uint8/OpenCV
# transforms: numpy-2 safe and > 2x the speed of mmpretrain's pipeline (tools/benchmark/augmentation.py).
# Batched augmentation on the training device instead: imagenet_bs256_simclr_batchaug.py with
# models/simclr_r50_batchaug.py.
view_pipeline = [
    dict(type='RandomResizedCropFlip', size=224, scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.), flip_prob=0.5),
    dict(type='ColorDistortion', strength=1.0, jitter_prob=0.8, gray_prob=0.2),
    dict(type='RandomGaussianBlur', prob=0.5, sigma_range=(0.1, 2.0), kernel_frac=0.1),
]

train_pipeline = [
    dict(type='LoadImageColor'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
# loader pipeline when the views are made on the device (the _batchaug bases): decode only (JPEG DCT-downscaled
# while the shorter side stays >= 320) and squash each image to 320x320 (area interpolation); the device crops are
# sampled in the original image's pixels (ori_shape)
decode_pipeline = [
    dict(type='LoadImageColor', min_side=320),
    dict(type='Resize', scale=(320, 320), keep_ratio=False, interpolation='area'),
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
