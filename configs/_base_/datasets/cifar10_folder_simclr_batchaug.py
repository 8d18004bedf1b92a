# CIFAR-10 SimCLR with batched augmentation on the training device (mmsimclr's SimCLRDataPreprocessor): the loader
# only decodes the 32x32 images; crops, flips and colour distortion (s = 0.5, no blur) of both views are made on the
# device. Use it in a top-level config in place of cifar10_folder_simclr.py, plus ONE line:
#     model = dict(data_preprocessor=_base_.data_preprocessor)
_base_ = ['./cifar10_folder_simclr.py']

view_pipeline = None  # views are made by the data preprocessor
decode_size = 32
train_pipeline = [
    dict(type='LoadImageColor'),
    dict(type='Resize', scale=(decode_size, decode_size), keep_ratio=False, interpolation='area'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

data_preprocessor = dict(
    type='SimCLRDataPreprocessor',
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=True,
    num_views=2,
    size=32,
    scale=(0.08, 1.0),
    ratio=(3. / 4., 4. / 3.),
    flip_prob=0.5,
    strength=0.5,
    jitter_prob=0.8,
    gray_prob=0.2,
    blur_prob=0.0)
