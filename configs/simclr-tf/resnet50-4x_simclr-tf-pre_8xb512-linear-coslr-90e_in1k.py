# The SimCLR paper's own ResNet-50 (4x) + linear classifier (google-research/simclr, TensorFlow); see the 1x config.
_base_ = ['./resnet50-1x_simclr-tf-pre_8xb512-linear-coslr-90e_in1k.py']

width = 4
model = dict(
    backbone=dict(stem_channels=64 * width, base_channels=64 * width),
    head=dict(in_channels=2048 * width))
