# Linear evaluation of the 800-epoch SimCLR ResNet-50: 90 epochs, 8 GPUs x 512 images
_base_ = [
    '../_base_/models/resnet50_linear.py',
    '../_base_/datasets/imagenet_bs512_linear.py',
    '../_base_/schedules/lars_coslr_90e_linear.py',
    '../_base_/default_runtime.py',
]

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/simclr_r50_16xb256-coslr-800e_in1k/epoch_800.pth')))
train_dataloader = dict(batch_size=512)
