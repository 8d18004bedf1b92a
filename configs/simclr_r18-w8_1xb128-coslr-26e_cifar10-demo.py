# The `make demo` recipe (tools/demo.py): SimCLR on a 2-core CPU in 10 minutes of training, chosen by measurement
# (README, "make demo": the sweep over images, width, epochs, batch, lr, temperature and crop). CIFAR ResNet-18 at an
# eighth of the width (8 channels in the first stage, 64-d features); weights and activations channels-last
# (oneDNN's faster convolutions: 20% (width 16) to 30% (width 8) less forward + backward time on this CPU);
# projection head 64-1024-128; batch 128 on 1 process; LARS lr 1.7 = 0.15 x sqrt(128) (the paper's square-root
# scaling for small batches, Appendix B.1, at twice its 0.075: +1.3 kNN points at this short schedule), wd 1e-6,
# norm/bias excluded; 3 warm-up epochs + cosine, 26 epochs; T = 0.2 (a short schedule; the paper's CIFAR runs use
# 0.5); views of the CIFAR-10 recipe (s = 0.5, no blur) with crops of 20-100% of the image (the paper: 8-100%).
# The data: the class-balanced subset tools/demo.py links into work_dirs/demo/data/ (train/<class>/*, test/<class>/*).
# kNN top-1 (k = 200, T = 0.1) before training and every 4 epochs; training stops after an epoch once one more would
# pass 10 minutes (a busy machine), saving that epoch.
_base_ = [
    '_base_/models/simclr_r18_cifar.py',
    '_base_/datasets/cifar10_bs512_simclr.py',
    '_base_/schedules/lars_coslr_200e.py',
    '_base_/default_runtime.py',
]

data_root = 'work_dirs/demo/data/'
model = dict(
    channels_last=True,
    backbone=dict(stem_channels=8, base_channels=8),
    neck=dict(in_channels=64, hid_channels=1024, out_channels=128),
    head=dict(temperature=0.2))
train_dataloader = dict(
    batch_size=128,
    num_workers=1,
    persistent_workers=True,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        # the CIFAR-10 views with a milder crop: 20-100% of the image instead of 8-100% (the README's run H: kNN 45.8
        # against 44.5, ahead at every evaluation from epoch 4 on)
        pipeline=[
            _base_.train_pipeline[0],
            dict(_base_.train_pipeline[1],
                 transforms=[[dict(_base_.view_pipeline[0], scale=(0.2, 1.0)), _base_.view_pipeline[1]]]),
            _base_.train_pipeline[2],
        ]))

optim_wrapper = dict(optimizer=dict(lr=1.7))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=3, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=23, by_epoch=True, begin=3, end=26, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=26)
auto_scale_lr = dict(base_batch_size=128)

custom_hooks = [
    dict(type='KNNMonitorHook', interval=4, k=200, temperature=0.1, batch_size=250, num_workers=1,
         eval_before_train=True),
    dict(type='TimeBudgetHook', max_minutes=10),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=26, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
