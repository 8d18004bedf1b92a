# SimCLRv2 pretraining, ResNet-101 1x with selective kernels (TF: r101_1x_sk1; 65M backbone parameters;
# published 76.3 linear eval, 68.3 / 75.1 / 80.6 fine-tuned on 1% / 10% / 100% of the labels):
# the recipe of simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py at this size.
_base_ = ['./simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py']

model = dict(backbone=dict(depth=101, width_multiplier=1, sk_ratio=0.0625),
             neck=dict(in_channels=2048))
