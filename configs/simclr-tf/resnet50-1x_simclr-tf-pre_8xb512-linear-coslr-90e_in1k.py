# The SimCLR paper's own ResNet-50 (1x) + linear classifier (google-research/simclr, TensorFlow; 69.1 top-1),
# converted by tools/model_converters/simclr_tf_to_mmsimclr.py (the model zoo converts it on first use).
# Architecture as the paper's resnet.py: ResNet v1, stride in the 3x3 conv, widths x multiplier incl. the stem,
# TensorFlow's SAME stem max pool (ResNetTFStem). Inputs: RGB in [0, 1] (no mean/std); evaluation: centred crop of
# 0.875 of the shorter side, bicubic resize to 224 (the paper's data_util.py). The dataset / schedule are those of
# our linear evaluation, so tools/test.py and transfer_linear.py run on it unchanged.
_base_ = [
    '../_base_/datasets/imagenet_bs512_tf_eval.py',
    '../_base_/schedules/lars_coslr_90e_linear.py',
    '../_base_/default_runtime.py',
]

width = 1  # 64 x width channels in the stem and the first stage
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(num_classes=1000, mean=[0., 0., 0.], std=[255., 255., 255.], to_rgb=True),
    backbone=dict(
        type='ResNetTFStem',
        depth=50,
        stem_channels=64 * width,
        base_channels=64 * width,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        frozen_stages=4,
        norm_eval=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048 * width,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)),
)

