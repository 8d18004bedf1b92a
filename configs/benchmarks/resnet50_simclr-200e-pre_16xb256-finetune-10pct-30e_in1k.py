# Semi-supervised fine-tuning of the 200-epoch SimCLR ResNet-50 on 10% of the ImageNet labels (paper, Table 7 and
# Appendix B.5): the 1% recipe (resnet50_simclr-200e-pre_16xb256-finetune-1pct-60e_in1k.py: whole network, LARS +
# Nesterov, lr 0.8, batch 4096, no warm-up, no weight decay, random resized crop + flip only; top-1 and top-5 at
# resize 256 / centre crop 224) on the 10% subset (128 or 129 images per class) for 30 epochs.
_base_ = ['./resnet50_simclr-200e-pre_16xb256-finetune-1pct-60e_in1k.py']

train_dataloader = dict(dataset=dict(ann_file='meta/train_10percent.txt'))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=30, by_epoch=True, begin=0, end=30, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=30, val_interval=5)
