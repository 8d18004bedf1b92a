# SimCLRv2 pretraining, ResNet-50 1x without selective kernels (TF: r50_1x_sk0, 24M backbone parameters; published
# 71.7 linear eval, 57.9 / 68.4 fine-tuned on 1% / 10% of the labels), ImageNet-1k, 800 epochs, 16 GPUs x 256 =
# 4096 images per step: 3-layer projection head, LARS lr 0.1 x sqrt(4096) = 6.4 (sqrt scaling), weight decay 1e-4,
# 40 warm-up epochs, tau 0.1, global BN (see the _base_ files for sources). No MoCo-style memory (never released).
#
# Any of the 13 published architectures (mmsimclr.models.backbones.simclrv2_arch.SIMCLRV2_ARCHS): set depth, width
# and SK, and the head's input width 2048 x width (its hidden width follows), on the command line, e.g. r152_3x_sk1:
#   --cfg-options model.backbone.depth=152 model.backbone.width_multiplier=3 model.backbone.sk_ratio=0.0625 \
#                 model.neck.in_channels=6144
# or in a three-line config that inherits this file with the same four values (and its own name: simclrv2_r152-3x-
# sk1_...). Big models: model.grad_cache=dict(chunk_size=...) gives the exact 4096 batch in less memory.
_base_ = [
    '../_base_/models/simclrv2_r50.py',
    '../_base_/datasets/imagenet_bs256_simclr.py',  # SimCLR's views (paper: "the same set of simple augmentations")
    '../_base_/schedules/lars_coslr_800e_simclrv2.py',
    '../_base_/default_runtime.py',
]

model = dict(backbone=dict(depth=50, width_multiplier=1, sk_ratio=0.0), neck=dict(in_channels=2048))
train_dataloader = dict(batch_size=256)
