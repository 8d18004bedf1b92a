# Semi-supervised fine-tuning schedule (paper, Appendix B.5): the whole network, LARS with Nesterov momentum 0.9,
# lr 0.8 (0.05 x 4096 / 256), no warm-up, no weight decay; cosine decay per iteration (the paper does not name the
# decay; the SimCLR reference code decays with a cosine). Configs set max_epochs and the scheduler's T_max / end.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=0.8, momentum=0.9, nesterov=True, weight_decay=0.0),
    constructor='SimCLROptimWrapperConstructor',
    paramwise_cfg=dict(exclude_norm_and_bias=True))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=60, by_epoch=True, begin=0, end=60, convert_to_iter_based=True)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=60, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=4096)
