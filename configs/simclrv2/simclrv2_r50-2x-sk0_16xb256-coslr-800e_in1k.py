# SimCLRv2 pretraining, ResNet-50 2x without selective kernels (TF: r50_2x_sk0; 94M backbone parameters;
# published 75.6 linear eval, 66.3 / 73.9 / 79.1 fine-tuned on 1% / 10% / 100% of the labels):
# the recipe of simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py at this size.
_base_ = ['./simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py']

model = dict(backbone=dict(depth=50, width_multiplier=2, sk_ratio=0.0),
             neck=dict(in_channels=4096))
