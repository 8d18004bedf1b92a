# SimCLRv2's pretrained ResNet-152 (3x, SK) with the linear classifier trained alongside (published top-1 79.8),
# on the pooled backbone features; see the base config.
_base_ = ['./_base_/simclrv2-tf_classifier_8xb512-linear-coslr-90e_in1k.py']

model = dict(
    backbone=dict(depth=152, width_multiplier=3, sk_ratio=0.0625),
    neck=dict(in_channels=6144),
    head=dict(in_channels=6144))
