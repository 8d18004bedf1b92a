# SimCLRv2 semi-supervised fine-tuning of ResNet-50 1x (no SK) on 1% of the ImageNet labels (published for the TF
# model: 57.9 top-1): the whole network from the first projection-head layer (ft_proj_selector=1) + a zero-initialised
# linear classifier; LARS lr 0.005 x sqrt(1024) = 0.16, momentum 0.9, no weight decay, no warm-up, cosine decay,
# batch 1024 (8 GPUs x 128), 60 epochs, global BN (paper Sec. 3.1; README fine-tuning command). Weight scale of v1 /
# v2 checkpoints: handled by LARS (see _base_/schedules/lars_finetune_simclrv2.py).
# Training images: random resized crop (bicubic, as TF) + flip only; evaluation: TF's centre crop of 0.875 of the
# shorter side, bicubic resize to 224 (data_util.py), top-1 / top-5.
# The 1% list (12 or 13 images per class) is written by
#   python tools/dataset_converters/make_label_subsets.py data/imagenet/meta/train.txt
# (or converted from the published 1percent.txt with --published).
# Starting point: our pretraining run (below) or a converted TF SimCLRv2 checkpoint; set both init_cfgs to it:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH model.neck.init_cfg.checkpoint=PATH
# A SimCLRv1 checkpoint (no 3-layer head) fine-tunes from the backbone output instead (ft_proj_selector=0):
#   ... model.neck.out_layer=0 model.neck.init_cfg=None
_base_ = [
    '../_base_/models/simclrv2_r50_finetune.py',
    '../_base_/datasets/imagenet_bs512_tf_eval.py',
    '../_base_/schedules/lars_finetune_simclrv2.py',
    '../_base_/default_runtime.py',
]

pretrained = 'work_dirs/simclrv2_r50-1x-sk0_16xb256-coslr-800e_in1k/epoch_800.pth'
model = dict(
    backbone=dict(depth=50, width_multiplier=1, sk_ratio=0.0, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=2048, init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=2048))
optim_wrapper = dict(optimizer=dict(lr=0.16))  # 0.005 x sqrt(1024)
# the projection head's 2nd and 3rd layers are kept (the checkpoint loads whole) but not run: DDP must allow
# parameters without gradients
model_wrapper_cfg = dict(find_unused_parameters=True)

train_pipeline = _base_.tf_train_pipeline  # TF fine-tuning crops (imagenet_bs512_tf_eval.py)
train_dataloader = dict(batch_size=128, dataset=dict(ann_file='meta/train_1percent.txt', pipeline=train_pipeline))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=60, by_epoch=True, begin=0, end=60, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=60, val_interval=10)
