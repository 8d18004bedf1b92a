# SimCLRv2 pretraining, ResNet-101 1x without selective kernels (TF: r101_1x_sk0; 43M backbone parameters;
# published 73.6 linear eval, 62.1 / 71.4 / 78.2 fine-tuned on 1% / 10% / 100% of the labels):
# the recipe of simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py at this size.
_base_ = ['./simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py']

model = dict(backbone=dict(depth=101, width_multiplier=1, sk_ratio=0.0),
             neck=dict(in_channels=2048))
