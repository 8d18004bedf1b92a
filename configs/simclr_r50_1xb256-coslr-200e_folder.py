# SimCLR, ResNet-50, your own unlabelled images (any folder tree), 200 epochs, 1 GPU x 256 images.
# Train: python tools/train.py simclr_r50_1xb256-coslr-200e_folder --cfg-options train_dataloader.dataset.data_root=DIR
# Memory: 256 images = 512 views of ~82 MiB of saved activations each in fp32: ~42 GB, an 80 GB GPU (with --amp,
# bf16, about half). On a 24 GB GPU keep the batch and add the exact large-batch mode (README, "Your own images").
# lr rule: square root (paper Appendix B.1; google-research/simclr learning_rate_scaling='sqrt'):
# lr = 0.075 x sqrt(256) = 1.2. With --auto-scale-lr another batch b gets 1.2 x sqrt(b / 256) (rule='sqrt').
_base_ = [
    '_base_/models/simclr_r50.py',
    '_base_/datasets/folder_bs256_simclr.py',
    '_base_/schedules/lars_coslr_200e.py',
    '_base_/default_runtime.py',
]

train_dataloader = dict(batch_size=256)
optim_wrapper = dict(optimizer=dict(lr=1.2))
auto_scale_lr = dict(base_batch_size=256, rule='sqrt')
