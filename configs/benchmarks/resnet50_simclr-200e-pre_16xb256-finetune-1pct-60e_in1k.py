# Semi-supervised fine-tuning of the 200-epoch SimCLR ResNet-50 on 1% of the ImageNet labels (paper, Table 7 and
# Appendix B.5): whole network, LARS + Nesterov, lr 0.8, batch 4096 (16 GPUs x 256), no warm-up, no weight decay,
# random resized crop + flip only, 60 epochs; evaluation: resize 256, centre crop 224, top-1 and top-5.
# The subset list (12 or 13 images per class) is written by
#   python tools/dataset_converters/make_label_subsets.py data/imagenet/meta/train.txt
# (or converted from the published 1percent.txt with --published). Checkpoint to start from:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    '../_base_/models/resnet50_linear.py',
    '../_base_/datasets/imagenet_bs512_linear.py',
    '../_base_/schedules/lars_nesterov_finetune.py',
    '../_base_/default_runtime.py',
]

model = dict(backbone=dict(
    frozen_stages=-1,  # every stage is trained
    norm_eval=False,
    init_cfg=dict(checkpoint='work_dirs/simclr_r50_16xb256-coslr-200e_in1k/epoch_200.pth')))
train_dataloader = dict(batch_size=256, dataset=dict(ann_file='meta/train_1percent.txt'))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=60, by_epoch=True, begin=0, end=60, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=60, val_interval=10)
