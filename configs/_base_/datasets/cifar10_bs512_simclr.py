# CIFAR-10 for SimCLR pretraining (batch 512) from an image folder: {data_root}/train/<class>/* and
# {data_root}/test/<class>/* (e.g. `tar xzf cifar10-jpeg.tar.gz -C data/`); move it with
# --cfg-options train_dataloader.dataset.data_root=PATH (the kNN monitor's sets follow the training set).
# Other sources, each its own base: cifar10_bs512_simclr_pickle.py (mmpretrain's CIFAR10, the python pickles);
# cifar10_bs512_simclr_batchaug.py (views made on the training device, with models/simclr_r18_cifar_batchaug.py).
data_root = 'data/cifar10/'

# SimCLR views for CIFAR-10 (paper, Appendix B.9): as ImageNet's but colour distortion strength s = 0.5, no blur
view_pipeline = [
    dict(type='RandomResizedCropFlip', size=32, scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.), flip_prob=0.5),
    dict(type='ColorDistortion', strength=0.5, jitter_prob=0.8, gray_prob=0.2),
]
train_pipeline = [
    dict(type='LoadImageColor'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
# evaluation (kNN monitor, knn_eval / t-SNE tools, inference_model / extract_features of these models): the image
# squashed to the network's 32x32 input, as the CIFAR images already are
test_pipeline = [
    dict(type='LoadImageColor'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False, interpolation='area'),
    dict(type='PackInputs'),
]
# loader pipeline when the views are made on the device (the _batchaug bases): the same decode + squash
decode_pipeline = test_pipeline

train_dataloader = dict(
    batch_size=512,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train', pipeline=train_pipeline))

# weighted kNN top-1 (k = 200, T = 0.1) of the backbone features on the test set, memory bank = the train set
# (datasets derived from train_dataloader.dataset: same source and root, no augmentation)
custom_hooks = [dict(type='KNNMonitorHook', interval=10, k=200, temperature=0.1, batch_size=512, num_workers=8)]
