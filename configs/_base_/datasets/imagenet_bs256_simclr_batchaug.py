# ImageNet SimCLR with batched augmentation on the training device (mmsimclr's SimCLRDataPreprocessor).
# The loader only decodes (JPEG DCT-downscaled while the shorter side stays >= 320) and squashes each image to
# 320x320 (area interpolation); crops, flips, colour distortion (s = 1) and blur of both views are made on the device
# with the paper's distributions, crops sampled in the original image's pixels (ori_shape).
# Use it in a top-level config in place of imagenet_bs256_simclr.py, plus ONE line:
#     model = dict(data_preprocessor=_base_.data_preprocessor)
_base_ = ['./imagenet_bs256_simclr.py']

view_pipeline = None  # views are made by the data preprocessor
decode_size = 320
train_pipeline = [
    dict(type='LoadImageColor', min_side=decode_size),
    dict(type='Resize', scale=(decode_size, decode_size), keep_ratio=False, interpolation='area'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

data_preprocessor = dict(
    type='SimCLRDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
    num_views=2,
    size=224,
    scale=(0.08, 1.0),
    ratio=(3. / 4., 4. / 3.),
    flip_prob=0.5,
    strength=1.0,
    jitter_prob=0.8,
    gray_prob=0.2,
    blur_prob=0.5,
    blur_sigma=(0.1, 2.0),
    blur_kernel_frac=0.1)
