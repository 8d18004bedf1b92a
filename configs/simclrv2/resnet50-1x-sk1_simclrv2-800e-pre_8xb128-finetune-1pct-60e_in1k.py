# SimCLRv2 semi-supervised fine-tuning of ResNet-50 1x with selective kernels on 1% of the ImageNet labels
# (published for the TF model: 64.5 top-1): the recipe of resnet50-1x-sk0_simclrv2-800e-pre_8xb128-finetune-1pct-
# 60e_in1k.py with the SK backbone and the paper's lr for the larger variants (width > 1x and / or SK):
# 0.002 x sqrt(1024) = 0.064 (Sec. 3.1).
_base_ = ['./resnet50-1x-sk0_simclrv2-800e-pre_8xb128-finetune-1pct-60e_in1k.py']

pretrained = 'work_dirs/simclrv2_r50-1x-sk1_16xb256-coslr-800e_in1k/epoch_800.pth'
model = dict(
    backbone=dict(sk_ratio=0.0625, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(init_cfg=dict(checkpoint=pretrained)))
optim_wrapper = dict(optimizer=dict(lr=0.064))  # 0.002 x sqrt(1024)
