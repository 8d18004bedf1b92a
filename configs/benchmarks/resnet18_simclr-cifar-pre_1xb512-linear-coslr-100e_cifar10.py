# Linear evaluation of a SimCLR CIFAR ResNet-18 on CIFAR-10: frozen backbone, linear classifier, 100 epochs of
# SGD (momentum 0.9, nesterov, lr 0.2 = 0.1 x 512 / 256, no weight decay, cosine), 1 GPU x 512 images.
#   python tools/train.py configs/benchmarks/resnet18_simclr-cifar-pre_1xb512-linear-coslr-100e_cifar10.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/simclr_r18_1xb512-coslr-200e_cifar10/epoch_200.pth
_base_ = [
    '../_base_/models/resnet18_cifar_linear.py',
    '../_base_/datasets/cifar10_bs512_linear.py',
    '../_base_/default_runtime.py',
]

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/simclr_r18_1xb512-coslr-200e_cifar10/epoch_200.pth')))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.2, momentum=0.9, nesterov=True, weight_decay=0.0))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=100, by_epoch=True, begin=0, end=100)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=512)
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=1, save_best='auto'))
