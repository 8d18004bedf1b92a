# SimCLRv2 semi-supervised fine-tuning of ResNet-50 1x with selective kernels on 10% of the ImageNet labels
# (published for the TF model: 72.1 top-1): the SK 1% recipe (resnet50-1x-sk1_simclrv2-800e-pre_8xb128-finetune-
# 1pct-60e_in1k.py: lr 0.064) on the 10% list for 30 epochs (paper Sec. 3.1).
_base_ = ['./resnet50-1x-sk1_simclrv2-800e-pre_8xb128-finetune-1pct-60e_in1k.py']

train_dataloader = dict(dataset=dict(ann_file='meta/train_10percent.txt'))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=30, by_epoch=True, begin=0, end=30, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=30, val_interval=5)
