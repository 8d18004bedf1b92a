# SimCLR, ResNet-50, ImageNet-1k, 200 epochs, 16 GPUs x 256 images (4096 per step)
_base_ = [
    '_base_/models/simclr_r50.py',
    '_base_/datasets/imagenet_bs256_simclr.py',
    '_base_/schedules/lars_coslr_200e.py',
    '_base_/default_runtime.py',
]

train_dataloader = dict(batch_size=256)
