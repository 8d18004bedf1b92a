# SimCLRv2 semi-supervised fine-tuning of ResNet-50 1x (no SK) on 10% of the ImageNet labels (published for the TF
# model: 68.4 top-1): the 1% recipe (resnet50-1x-sk0_simclrv2-800e-pre_8xb128-finetune-1pct-60e_in1k.py) on the 10%
# list (128 or 129 images per class) for 30 epochs (paper Sec. 3.1).
_base_ = ['./resnet50-1x-sk0_simclrv2-800e-pre_8xb128-finetune-1pct-60e_in1k.py']

train_dataloader = dict(dataset=dict(ann_file='meta/train_10percent.txt'))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=30, by_epoch=True, begin=0, end=30, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=30, val_interval=5)
