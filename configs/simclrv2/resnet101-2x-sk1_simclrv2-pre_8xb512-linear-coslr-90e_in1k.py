# SimCLRv2's pretrained ResNet-101 (2x, SK) with the linear classifier trained alongside (published top-1 79.0),
# on the pooled backbone features; see the base config.
_base_ = ['./_base_/simclrv2-tf_classifier_8xb512-linear-coslr-90e_in1k.py']

model = dict(
    backbone=dict(depth=101, width_multiplier=2, sk_ratio=0.0625),
    neck=dict(in_channels=4096),
    head=dict(in_channels=4096))
