# SimCLRv2 pretraining, ResNet-50 1x with selective kernels (TF: r50_1x_sk1, --sk_ratio=0.0625: SK 3x3 convolutions,
# three-conv stem, average-pool shortcuts; 35M backbone parameters; published 74.6 linear eval, 64.5 / 72.1
# fine-tuned on 1% / 10% of the labels): the recipe of simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py (which also
# shows how to pick any of the 13 architectures).
_base_ = ['./simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k.py']

model = dict(backbone=dict(sk_ratio=0.0625))
