# SimCLRv2 (Chen et al. 2020, "Big Self-Supervised Models are Strong Semi-Supervised Learners", Sec. 2.2 and 3.1;
# google-research/simclr run.py / model_util.py): f(.) = SimCLRv2's ResNet (ResNetSK: depth 50 / 101 / 152, width
# 1x-3x, selective kernels or not), g(.) = a 3-layer MLP projection head with BN on every layer (SimCLRv2Neck:
# 2048w-2048w-128, --num_proj_layers=3, --proj_out_dim=128), NT-Xent with tau = 0.1 (--temperature), global BN
# (--global_bn) in f and g. The configs set depth / width_multiplier / sk_ratio; this file is R50 1x without SK.
# The paper's MoCo-style memory (a momentum encoder whose projections are queued as extra negatives, 64K, EMA 0.999;
# ~1% better) was never released by the authors (README / run.py have no such flag), so it is left out here: these
# recipes are what google-research/simclr's code trains.
model = dict(
    type='SimCLR',
    # TF's input: RGB in [0, 1], no mean / std (data_util.py); so our checkpoints and the converted TF ones are
    # interchangeable in the fine-tuning configs of this folder
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.], to_rgb=True),
    backbone=dict(
        type='ResNetSK',
        depth=50,
        width_multiplier=1,
        sk_ratio=0.0,
        out_indices=(3, ),
        norm_cfg=dict(type='GlobalBN'),  # BN decay 0.9 (--batch_norm_decay) = momentum 0.1, eps 1e-5
        zero_init_residual=True),  # TF: gamma of each block's last BN starts at 0 (resnet.py, init_zero)
    neck=dict(
        type='SimCLRv2Neck',
        in_channels=2048,  # 2048 x width; the hidden width follows it (TF: mid_dim = feature width)
        out_channels=128,
        num_layers=3,
        with_avg_pool=True,
        norm_cfg=dict(type='GlobalBN'),
        # TF's dense layers start from N(0, 0.01) (model_util.linear_layer)
        init_cfg=[dict(type='Normal', std=0.01, layer='Linear'),
                  dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]),
    head=dict(type='ContrastiveHead', loss=dict(type='NTXentLoss'), temperature=0.1),
)
