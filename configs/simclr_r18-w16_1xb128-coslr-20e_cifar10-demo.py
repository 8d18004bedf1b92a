# The `make demo` recipe (tools/demo.py): SimCLR on a CPU in about 10 minutes. CIFAR ResNet-18 at a quarter of the
# width (16 channels in the first stage, 128-d features; ~16x cheaper than the full one), projection head
# 128-1024-128, batch 128 on 1 process, LARS lr 0.8485 = 0.075 x sqrt(128) (the paper's square-root scaling for
# small batches, Appendix B.1), wd 1e-6, norm/bias excluded, 2 warm-up epochs + cosine, 20 epochs, T = 0.5, views of
# the CIFAR-10 recipe (s = 0.5, no blur). The data: the class-balanced subset tools/demo.py links into
# work_dirs/demo/data/ (train/<class>/*, test/<class>/*). kNN top-1 (k = 200, T = 0.1) before training and every
# 2 epochs; training stops after an epoch once one more would pass 11 minutes (a busy machine), saving that epoch.
_base_ = [
    '_base_/models/simclr_r18_cifar.py',
    '_base_/datasets/cifar10_bs512_simclr.py',
    '_base_/schedules/lars_coslr_200e.py',
    '_base_/default_runtime.py',
]

data_root = 'work_dirs/demo/data/'
model = dict(
    backbone=dict(stem_channels=16, base_channels=16),
    neck=dict(in_channels=128, hid_channels=1024, out_channels=128))
train_dataloader = dict(
    batch_size=128,
    num_workers=1,
    persistent_workers=True,
    pin_memory=False,
    dataset=dict(data_root=data_root))

optim_wrapper = dict(optimizer=dict(lr=0.8485))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=2, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=18, by_epoch=True, begin=2, end=20, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=20)
auto_scale_lr = dict(base_batch_size=128)

custom_hooks = [
    dict(type='KNNMonitorHook', interval=2, k=200, temperature=0.1, batch_size=250, num_workers=1,
         eval_before_train=True),
    dict(type='TimeBudgetHook', max_minutes=11),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=20, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
