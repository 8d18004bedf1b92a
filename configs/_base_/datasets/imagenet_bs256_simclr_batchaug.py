# ImageNet SimCLR with batched augmentation on the training device: the loader only decodes and squashes to
# 320x320 (decode_pipeline of imagenet_bs256_simclr.py); crops, flips, colour distortion (s = 1) and blur of both
# views are made by the model's SimCLRDataPreprocessor, which models/simclr_r50_batchaug.py sets, with the paper's
# distributions. Use both in a top-level config in place of the plain bases.
_base_ = ['./imagenet_bs256_simclr.py']

train_pipeline = {{_base_.decode_pipeline}}
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
