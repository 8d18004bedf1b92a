# SimCLR, CIFAR-style ResNet-18 (3x3 stride-1 stem, no max-pool), your own small unlabelled images (tiles,
# thumbnails, icons: img_size in _base_/datasets/folder_small_bs512_simclr.py, 32 by default), 200 epochs,
# 1 GPU x 512 images; also a try-out on a CPU (add --cfg-options train_cfg.max_epochs=2).
# Train: python tools/train.py simclr_r18_1xb512-coslr-200e_folder --cfg-options train_dataloader.dataset.data_root=DIR
# T = 0.5 (the paper's CIFAR-10 setting). lr rule: square root (paper Appendix B.1): lr = 0.075 x sqrt(512) = 1.7;
# with --auto-scale-lr another batch b gets 1.7 x sqrt(b / 512) (rule='sqrt').
_base_ = [
    '_base_/models/simclr_r18_cifar.py',
    '_base_/datasets/folder_small_bs512_simclr.py',
    '_base_/schedules/lars_coslr_200e.py',
    '_base_/default_runtime.py',
]

optim_wrapper = dict(optimizer=dict(lr=1.7))
auto_scale_lr = dict(base_batch_size=512, rule='sqrt')
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=3))
