# SimCLRv2 pretraining, ResNet-152 1x with selective kernels (TF: r152_1x_sk1; 89M backbone parameters;
# published 77.2 linear eval, 70.0 / 76.5 / 81.3 fine-tuned on 1% / 10% / 100% of the labels):
# the recipe of simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py at this size.
_base_ = ['./simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py']

model = dict(backbone=dict(depth=152, width_multiplier=1, sk_ratio=0.0625),
             neck=dict(in_channels=2048))
