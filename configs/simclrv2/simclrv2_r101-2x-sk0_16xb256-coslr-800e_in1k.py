# SimCLRv2 pretraining, ResNet-101 2x without selective kernels (TF: r101_2x_sk0; 170M backbone parameters;
# published 77.0 linear eval, 69.1 / 75.8 / 80.7 fine-tuned on 1% / 10% / 100% of the labels):
# the recipe of simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py at this size.
_base_ = ['./simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py']

model = dict(backbone=dict(depth=101, width_multiplier=2, sk_ratio=0.0),
             neck=dict(in_channels=4096))
