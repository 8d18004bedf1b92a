# SimCLRv2 semi-supervised fine-tuning schedule (paper Sec. 3.1; the README's 1% command: --optimizer=lars
# --learning_rate=0.005 --learning_rate_scaling=sqrt --weight_decay=0 --warmup_epochs=0 --train_batch_size=1024
# --train_epochs=60 --global_bn=True):
# - LARS, momentum 0.9 (classic, no Nesterov: model_util.get_optimizer), no weight decay, no warm-up, cosine decay
#   to 0 per iteration (model_util.learning_rate_schedule with 0 warm-up epochs);
# - lr = 0.005 x sqrt(batch) = 0.16 at 1024 for the standard ResNets (1x, no SK); the paper uses 0.002 x sqrt(batch)
#   = 0.064 for the larger variants (width > 1x and / or SK): those configs set lr=0.064;
# - no LARS adaptation (and no weight decay) for BN parameters, biases and the new classifier (TF's LARS excludes
#   'batch_normalization', 'bias' and 'head_supervised' from both): the classifier is plain momentum SGD.
#
# Weight scale of the checkpoint (README "Known issues": SimCLRv1's conv weights are on average 16.8x SimCLRv2's,
# from weight decay 1e-6 vs 1e-4): handled by LARS, no rescaling. The conv kernels of f and the kept head layer's
# kernel are each followed by BN (all but SK's 1x1 attention logits, and v1 has no SK), so scaling a kernel by c
# leaves the network's output unchanged and scales its gradient by 1/c. LARS steps a kernel w by
# lr * eta * |w| / |g| * g (weight decay 0), a step of relative size lr * eta whatever c is: v1 and v2 checkpoints
# fine-tune with the same lr. Momentum SGD's relative step lr * |g| / |w| shrinks as
# 1/c^2 (~280x for v1 vs v2), which is why the README says momentum needs per-version hyper-parameters or
# rescaled kernels. The classifier is new (zero-initialised) and sees BN + ReLU outputs, whose scale does not
# depend on c, so its plain momentum steps are unaffected too. Keep LARS when fine-tuning v1 checkpoints here.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=0.16, momentum=0.9, weight_decay=0.0),
    constructor='SimCLROptimWrapperConstructor',
    paramwise_cfg=dict(exclude_norm_and_bias=True, custom_keys={'head.': dict(lars_exclude=True)}))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=60, by_epoch=True, begin=0, end=60, convert_to_iter_based=True)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=60, val_interval=10)
val_cfg = dict()
test_cfg = dict()
# the lr is for a total batch of 1024; `--auto-scale-lr` rescales it with the square root (--learning_rate_scaling)
auto_scale_lr = dict(base_batch_size=1024, rule='sqrt')
