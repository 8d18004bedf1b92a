# Linear evaluation of the 800-epoch SimCLR ResNet-50: the 200e model's recipe (90 epochs, 8 GPUs x 512 images)
_base_ = ['./resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k.py']

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/simclr_r50_16xb256-coslr-800e_in1k/epoch_800.pth')))
