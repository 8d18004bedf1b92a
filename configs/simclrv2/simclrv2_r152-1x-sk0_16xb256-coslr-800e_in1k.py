# SimCLRv2 pretraining, ResNet-152 1x without selective kernels (TF: r152_1x_sk0; 58M backbone parameters;
# published 74.5 linear eval, 64.0 / 73.0 / 79.3 fine-tuned on 1% / 10% / 100% of the labels):
# the recipe of simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py at this size.
_base_ = ['./simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py']

model = dict(backbone=dict(depth=152, width_multiplier=1, sk_ratio=0.0),
             neck=dict(in_channels=2048))
