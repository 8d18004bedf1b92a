# CIFAR-10 SimCLR with batched augmentation on the training device: the loader only decodes the 32x32 images
# (decode_pipeline of cifar10_bs512_simclr.py); the views (crop, flip, colour s = 0.5, no blur) are made by the
# model's SimCLRDataPreprocessor, which models/simclr_r18_cifar_batchaug.py sets. Use both in a top-level config in
# place of the plain bases.
_base_ = ['./cifar10_bs512_simclr.py']

train_pipeline = {{_base_.decode_pipeline}}
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
