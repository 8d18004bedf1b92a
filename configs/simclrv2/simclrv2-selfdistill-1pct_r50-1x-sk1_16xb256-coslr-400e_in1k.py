# SimCLRv2 step 3 (paper Sec. 2.3 / 3.1): self-distillation of the ResNet-50 1x SK model fine-tuned on 1% of the
# labels (the teacher: resnet50-1x-sk1_simclrv2-800e-pre_8xb128-finetune-1pct-60e_in1k.py) into a student of the same
# architecture without the projection head (SK ResNet-50 + linear classifier, from random weights), on all ImageNet
# training images *without their labels*: the loss is the cross-entropy to the teacher's softmax at tau = 0.1
# (Eq. 2; tau = 1.0 for big-to-small). Schedule, weight decay and batch as pretraining (LARS 0.1 x sqrt(4096) = 6.4,
# wd 1e-4, warm-up 5% = 20 epochs, cosine; 16 GPUs x 256), 400 epochs. Teacher and student see the same image: the
# fine-tuning augmentation (random resized crop + flip). Evaluation: the student's top-1 / top-5.
# The authors' distillation code is not public (only a colab), so this is the paper's description.
# Teacher weights (loaded strictly): --cfg-options model.teacher_checkpoint=PATH
_base_ = [
    '../_base_/datasets/imagenet_bs512_tf_eval.py',
    '../_base_/schedules/lars_coslr_800e_simclrv2.py',
    '../_base_/default_runtime.py',
]

arch = dict(type='ResNetSK', depth=50, width_multiplier=1, sk_ratio=0.0625, out_indices=(3, ),
            norm_cfg=dict(type='GlobalBN'))
model = dict(
    type='SimCLRv2Distiller',
    data_preprocessor=dict(num_classes=1000, mean=[0., 0., 0.], std=[255., 255., 255.], to_rgb=True),
    backbone=dict(arch, zero_init_residual=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)),
    # the fine-tuned model, as built by the fine-tuning config (its weights come from teacher_checkpoint)
    teacher=dict(
        type='ImageClassifier',
        backbone=arch,
        neck=dict(type='SimCLRv2Neck', in_channels=2048, out_channels=128, num_layers=3, out_layer=1,
                  norm_cfg=dict(type='GlobalBN')),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0))),
    teacher_checkpoint='work_dirs/resnet50-1x-sk1_simclrv2-800e-pre_8xb128-finetune-1pct-60e_in1k/epoch_60.pth',
    temperature=0.1,
)

# all training images; their labels are loaded by the dataset but never read by the loss
train_pipeline = _base_.tf_train_pipeline  # TF fine-tuning crops (imagenet_bs512_tf_eval.py)
train_dataloader = dict(batch_size=256, drop_last=True, dataset=dict(pipeline=train_pipeline))

warmup_epochs = 20
max_epochs = 400
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict()
test_cfg = dict()
