# Transfer by fine-tuning (paper, Table 8, fine-tuned rows; Appendix B.8): the whole SimCLR ResNet-50 is trained on
# an image-folder dataset, data_root/train/<class>/<image> and data_root/test/<class>/<image>, with random resized
# crop + flip only (no colour distortion or blur); evaluation: short side 256, centre crop 224, top-1 and top-5.
# SGD with Nesterov momentum 0.9, batch 64, cosine decay over 100 epochs.
#
# Set the dataset root of all three loaders and the class count (checked before training by NumClassesCheckHook):
#   python tools/train.py configs/benchmarks/resnet50_simclr-200e-pre_1xb64-finetune-100e_folder.py \
#     --cfg-options train_dataloader.dataset.data_root=data/flowers val_dataloader.dataset.data_root=data/flowers \
#       test_dataloader.dataset.data_root=data/flowers model.head.num_classes=102 \
#       model.data_preprocessor.num_classes=102 model.backbone.init_cfg.checkpoint=PATH_TO_SIMCLR.pth
# (the top-level data_root / num_classes below are read when the file is parsed; overriding them does nothing)
# The paper picks lr from 7 log-spaced values in [1e-4, 1e-1] and weight decay from {0} and 7 log-spaced values in
# [1e-6, 1e-3] (divided by lr) on a validation split: override optim_wrapper.optimizer.lr / .weight_decay.
_base_ = [
    '../_base_/models/resnet50_linear.py',
    '../_base_/datasets/imagenet_bs512_linear.py',  # its pipelines; the images come from the folder below
    '../_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmsimclr.engine.hooks.num_classes_check_hook'], allow_failed_imports=False)

num_classes = 10  # a placeholder: set model.head.num_classes and model.data_preprocessor.num_classes
data_root = 'data/folder/'

model = dict(
    data_preprocessor=dict(num_classes=num_classes),
    backbone=dict(
        frozen_stages=-1,  # every stage is trained
        norm_eval=False,
        init_cfg=dict(checkpoint='work_dirs/simclr_r50_16xb256-coslr-200e_in1k/epoch_200.pth')),
    head=dict(num_classes=num_classes))

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root, data_prefix='test',
                 pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=100, by_epoch=True, begin=0, end=100, convert_to_iter_based=True)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
custom_hooks = [dict(type='NumClassesCheckHook')]
