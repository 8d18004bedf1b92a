# SimCLRv2 pretraining schedule (paper Sec. 3.1, confirmed by the first author in google-research/simclr issue #77:
# "Lr = 0.1 x sqrt(BatchSize), warmup is 5% of total"):
# - LARS, momentum 0.9, eta 1e-3 (run.py --optimizer=lars --momentum=0.9; lars_optimizer.py), norm-layer parameters
#   and biases without weight decay and without LARS adaptation (model_util.get_optimizer's exclusions);
# - weight decay 1e-4 (paper; run.py --weight_decay default and the README's ImageNet command). SimCLRv1 used 1e-6
#   (lars_coslr_200e.py), which is why v1 weights are ~16.8x larger (README, "Known issues");
# - lr = 0.1 x sqrt(total batch) = 6.4 at 4096 (run.py --learning_rate=0.1 --learning_rate_scaling=sqrt). The README's
#   100-epoch example command uses 0.075 x sqrt(4096) = 4.8 (v1's 0.3 x 4096 / 256); the paper's 800-epoch v2 models
#   used 6.4;
# - linear warm-up over 5% of training (40 of 800 epochs; run.py --warmup_epochs), then cosine decay to 0
#   (model_util.learning_rate_schedule), per iteration.
_base_ = './lars_coslr_200e.py'  # v1's LARS with its exclusions; v2's lr, weight decay and schedule below

optim_wrapper = dict(optimizer=dict(lr=6.4, weight_decay=1e-4))

warmup_epochs = 40
max_epochs = 800
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

# the lr above is for a total batch of 4096 (16 x 256); `--auto-scale-lr` rescales it with the square root, as the
# paper's lr = 0.1 x sqrt(batch): 2048 images per step -> 6.4 x sqrt(2048 / 4096) = 4.53 = 0.1 x sqrt(2048)
auto_scale_lr = dict(base_batch_size=4096, rule='sqrt')
