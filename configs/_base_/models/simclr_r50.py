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

# the same views made on the training device, batched (the _batchaug parts set it as model.data_preprocessor,
# merged into the one above: mean / std / to_rgb are kept)
batch_augmentation = dict(
    type='SimCLRDataPreprocessor',
    num_views=2,
    size=224,
    scale=(0.08, 1.0),
    ratio=(3. / 4., 4. / 3.),
    flip_prob=0.5,
    strength=1.0,
    jitter_prob=0.8,
    gray_prob=0.2,
    blur_prob=0.5,
    blur_sigma=(0.1, 2.0),
    blur_kernel_frac=0.1)
