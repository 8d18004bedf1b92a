# SimCLRv2's pretrained ResNet-152 (1x, SK) with the linear classifier trained alongside (published top-1 77.2),
# on the pooled backbone features; see the base config.
_base_ = ['./_base_/simclrv2-tf_classifier_8xb512-linear-coslr-90e_in1k.py']

model = dict(
    backbone=dict(depth=152, width_multiplier=1, sk_ratio=0.0625),
    neck=dict(in_channels=2048),
    head=dict(in_channels=2048))
