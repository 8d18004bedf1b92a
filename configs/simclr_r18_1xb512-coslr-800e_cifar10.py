# SimCLR on CIFAR-10 (paper, Appendix B.9): CIFAR ResNet-18 (3x3 stride-1 stem, no max-pool), colour distortion
# s = 0.5, no blur, batch 512 on 1 GPU, LARS (lr 1.0 = 0.5 x 512 / 256, wd 1e-6, norm/bias excluded),
# 10 warm-up epochs + cosine, 800 epochs, T = 0.5; online kNN top-1 every 10 epochs.
# Data: configs/_base_/datasets/cifar10_bs512_simclr.py (image folder by default, or mmpretrain's CIFAR10).
_base_ = [
    '_base_/models/simclr_r18_cifar.py',
    '_base_/datasets/cifar10_bs512_simclr.py',
    '_base_/schedules/lars_coslr_800e.py',
    '_base_/default_runtime.py',
]

optim_wrapper = dict(optimizer=dict(lr=1.0))
auto_scale_lr = dict(base_batch_size=512)
default_hooks = dict(checkpoint=dict(interval=50, max_keep_ckpts=3))
