# SimCLRv2 pretraining, ResNet-50 2x with selective kernels (TF: r50_2x_sk1; 140M backbone parameters;
# published 77.7 linear eval, 70.6 / 77.0 / 81.3 fine-tuned on 1% / 10% / 100% of the labels):
# the recipe of simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py at this size.
_base_ = ['./simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py']

model = dict(backbone=dict(depth=50, width_multiplier=2, sk_ratio=0.0625),
             neck=dict(in_channels=4096))
