# LARS (momentum 0.9, weight decay 1e-6), lr = 0.3 x total_batch / 256 = 4.8 at 4096,
# 10 epochs of linear warm-up then cosine decay (paper, Sec. 3 and Appendix B.1).
# Norm-layer parameters and biases: no weight decay, no LARS adaptation (chosen by parameter kind).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=4.8, momentum=0.9, weight_decay=1e-6),
    constructor='SimCLROptimWrapperConstructor',
    paramwise_cfg=dict(exclude_norm_and_bias=True))

warmup_epochs = 10
max_epochs = 200
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

# the lr above is for 16 x 256; `--auto-scale-lr` rescales it linearly for another total batch
auto_scale_lr = dict(base_batch_size=4096)
