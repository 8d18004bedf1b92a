# ImageNet with the SimCLR TensorFlow code's preprocessing (google-research/simclr data_util.py), for the models
# that take its inputs (configs/simclr-tf, configs/simclrv2): evaluation = a centred crop of 0.875 of the shorter
# side, bicubic resize to 224; the loaders and training pipeline are those of our linear evaluation
# (imagenet_bs512_linear.py). tf_train_pipeline: the TF fine-tuning crops (random resized crop with bicubic
# interpolation + flip), which the SimCLRv2 fine-tuning and distillation configs train with.
_base_ = ['imagenet_bs512_linear.py']

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CenterCropFraction', fraction=0.875),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic'),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

tf_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
