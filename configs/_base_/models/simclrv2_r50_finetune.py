# SimCLRv2 fine-tuning model (paper Sec. 2.2 / 3.1; README "Semi-supervised learning and fine-tuning the whole
# network": --num_proj_layers=3 --ft_proj_selector=1; issue #109: the whole network is trained): the pretrained
# SimCLRv2 ResNet, the first layer of the projection head kept (fc0 - BN - ReLU, SimCLRv2Neck out_layer=1; its other
# two layers are loaded but not run), then a new linear classifier (--zero_init_logits_layer=True: zero-initialised).
# Global BN as in pretraining (--global_bn=True). Inputs as the TF models: RGB in [0, 1].
# Start from a SimCLRv2 checkpoint (ours, or a TF one converted to these keys) with both init_cfgs:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH model.neck.init_cfg.checkpoint=PATH
# (backbone.* and neck.* are read; a checkpoint's own classifier, e.g. the TF linear-eval head, is not: TF's
# --variable_schema leaves head_supervised out too).
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(num_classes=1000, mean=[0., 0., 0.], std=[255., 255., 255.], to_rgb=True),
    backbone=dict(
        type='ResNetSK',
        depth=50,
        width_multiplier=1,
        sk_ratio=0.0,
        out_indices=(3, ),
        norm_cfg=dict(type='GlobalBN'),
        frozen_stages=-1,  # every stage is trained (--fine_tune_after_block=-1)
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=dict(
        type='SimCLRv2Neck',
        in_channels=2048,
        out_channels=128,
        num_layers=3,  # as pretrained, so the checkpoint loads whole
        out_layer=1,  # --ft_proj_selector=1: the ReLU output of the first layer (2048 x width)
        with_avg_pool=True,
        norm_cfg=dict(type='GlobalBN'),
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='neck.')),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048,  # the neck's hidden width, 2048 x width
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
        init_cfg=dict(type='Constant', layer='Linear', val=0)),
)
