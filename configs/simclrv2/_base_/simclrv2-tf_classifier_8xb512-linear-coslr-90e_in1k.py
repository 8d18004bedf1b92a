# The classifiers of SimCLRv2's published TensorFlow checkpoints (google-research/simclr, gs://simclr-checkpoints/
# simclrv2/), converted on first use by the model zoo (Converter: simclrv2_tf) or by
# tools/model_converters/simclr_tf_to_mmsimclr.py; inherited by configs/simclrv2/<model>_simclrv2-{pre,finetune-*}_*.
# The TF model: ResNetSK (depth, width, SK set per model) -> the 3-layer projection head (SimCLRv2Neck, all three
# layers held so the checkpoint loads whole) -> the linear classifier, on the neck's output `out_layer`
# (TF --ft_proj_selector): 0 = the pooled backbone features (the pretrained set's linear-eval head; the 100% fine-tuned
# set), 1 = the first head layer's ReLU output (the 1% and 10% fine-tuned sets). BN eps 1e-5 as TF. Inputs: RGB in
# [0, 1] (no mean/std); evaluation: centred crop of 0.875 of the shorter side, bicubic resize to 224 (TF's
# data_util.py). The dataset / schedule are those of our linear evaluation (as configs/simclr-tf), so tools/test.py
# and transfer_linear.py run on these configs unchanged; training with them fits the classifier on frozen backbone
# features (and, where out_layer=1, the head layer it sits on).
_base_ = [
    '../../_base_/datasets/imagenet_bs512_tf_eval.py',
    '../../_base_/schedules/lars_coslr_90e_linear.py',
    '../../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(num_classes=1000, mean=[0., 0., 0.], std=[255., 255., 255.], to_rgb=True),
    backbone=dict(
        type='ResNetSK',
        depth=50,
        width_multiplier=1,
        sk_ratio=0.0,
        out_indices=(3, ),
        frozen_stages=4,
        norm_eval=True),
    neck=dict(
        type='SimCLRv2Neck',
        in_channels=2048,  # 2048 x width, also the head's hidden width
        out_channels=128,
        num_layers=3,
        out_layer=0,
        with_avg_pool=True,
        norm_cfg=dict(type='BN1d')),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)),
)
# the head layers after out_layer get no gradient
model_wrapper_cfg = dict(find_unused_parameters=True)

