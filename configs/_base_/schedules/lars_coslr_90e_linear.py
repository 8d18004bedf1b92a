# Linear evaluation schedule: LARS lr 1.6 (0.1 x 4096 / 256), momentum 0.9, no weight decay, cosine over 90 epochs
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=1.6, momentum=0.9, weight_decay=0.0),
    constructor='SimCLROptimWrapperConstructor',
    paramwise_cfg=dict(exclude_norm_and_bias=True))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=90, by_epoch=True, begin=0, end=90)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=90, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=4096)
