# SimCLRv2 pretraining, ResNet-152 2x without selective kernels (TF: r152_2x_sk0; 233M backbone parameters;
# published 77.4 linear eval, 70.2 / 76.6 / 81.1 fine-tuned on 1% / 10% / 100% of the labels):
# the recipe of simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py at this size.
_base_ = ['./simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py']

model = dict(backbone=dict(depth=152, width_multiplier=2, sk_ratio=0.0),
             neck=dict(in_channels=4096))
