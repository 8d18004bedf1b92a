# SimCLR with the CIFAR variant of ResNet-18 (3x3 stride-1 stem, no max-pool), 512-2048-128 projection head
model = dict(
    type='SimCLR',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[125.307, 122.961, 113.8575],
        std=[51.5865, 50.847, 51.255],
        to_rgb=True),
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        out_indices=(3, ),
        norm_cfg=dict(type='GlobalBN'),
        zero_init_residual=True),
    neck=dict(
        type='NonLinearNeck',
        in_channels=512,
        hid_channels=2048,
        out_channels=128,
        num_layers=2,
        with_avg_pool=True,
        norm_cfg=dict(type='GlobalBN')),
    head=dict(type='ContrastiveHead', loss=dict(type='NTXentLoss'), temperature=0.5),
)

# the same views made on the training device, batched (the _batchaug parts set it as model.data_preprocessor,
# merged into the one above: mean / std / to_rgb are kept)
batch_augmentation = dict(
    type='SimCLRDataPreprocessor',
    num_views=2,
    size=32,
    scale=(0.08, 1.0),
    ratio=(3. / 4., 4. / 3.),
    flip_prob=0.5,
    strength=0.5,
    jitter_prob=0.8,
    gray_prob=0.2,
    blur_prob=0.0)
