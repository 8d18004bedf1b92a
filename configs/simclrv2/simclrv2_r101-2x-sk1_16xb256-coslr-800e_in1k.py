# SimCLRv2 pretraining, ResNet-101 2x with selective kernels (TF: r101_2x_sk1; 257M backbone parameters;
# published 79.0 linear eval, 73.2 / 78.8 / 82.4 fine-tuned on 1% / 10% / 100% of the labels):
# the recipe of simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py at this size.
_base_ = ['./simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py']

model = dict(backbone=dict(depth=101, width_multiplier=2, sk_ratio=0.0625),
             neck=dict(in_channels=4096))
