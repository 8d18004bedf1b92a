# SimCLR with ResNet-50: f(.) = ResNet-50 (zero-init residual, global BN), g(.) = 2048-2048-128 MLP, tau = 0.1
model = dict(
    type='SimCLR',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=50,
        out_indices=(3, ),
        norm_cfg=dict(type='GlobalBN'),
        zero_init_residual=True),
    neck=dict(
        type='NonLinearNeck',
        in_channels=2048,
        hid_channels=2048,
        out_channels=128,
        num_layers=2,
        with_avg_pool=True,
        norm_cfg=dict(type='GlobalBN')),
    head=dict(type='ContrastiveHead', loss=dict(type='NTXentLoss'), temperature=0.1),
)
