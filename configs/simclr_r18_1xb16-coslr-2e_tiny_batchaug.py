# The tiny smoke-test run with batched augmentation: the loader only decodes; SimCLRDataPreprocessor makes both views
# (crop, flip, colour s = 0.5, no blur: CIFAR settings) on the training device, GPU if there is one.
_base_ = ['./simclr_r18_1xb16-coslr-2e_tiny.py']

train_pipeline = [
    dict(type='LoadImageColor'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False, interpolation='area'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
model = dict(
    data_preprocessor=dict(
        _delete_=True,
        type='SimCLRDataPreprocessor',
        mean=[125.307, 122.961, 113.8575],
        std=[51.5865, 50.847, 51.255],
        to_rgb=True,
        num_views=2,
        size=32,
        strength=0.5,
        blur_prob=0.0))
