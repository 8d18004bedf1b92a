# SimCLR, ResNet-50, your own unlabelled images, 200 epochs, 8 GPUs x 512 images = 4096: the paper's batch on one
# 8-GPU node. Train: bash tools/dist_train.sh configs/simclr_r50_8xb512-coslr-200e_folder.py 8 \
#                        --cfg-options train_dataloader.dataset.data_root=DIR
# 512 images = 1024 views per GPU (~84 GB of saved activations in fp32) do not fit, so the exact large-batch mode
# runs each GPU's batch in chunks of 512 rows (256 images, ~42 GB on an 80 GB GPU; with --amp chunk_size=1024 fits):
# the gradient is that of the whole 4096-image batch with global BN over each chunk of all 8 GPUs (4096 rows).
# lr rule: square root, lr = 0.075 x sqrt(4096) = 4.8 (at 4096 the paper's linear 0.3 x 4096 / 256 is also 4.8);
# with --auto-scale-lr another total batch b gets 4.8 x sqrt(b / 4096) (rule='sqrt').
_base_ = [
    '_base_/models/simclr_r50.py',
    '_base_/datasets/folder_bs256_simclr.py',
    '_base_/schedules/lars_coslr_200e.py',
    '_base_/default_runtime.py',
]

model = dict(grad_cache=dict(chunk_size=512))
train_dataloader = dict(batch_size=512)
optim_wrapper = dict(optimizer=dict(lr=4.8))
auto_scale_lr = dict(base_batch_size=4096, rule='sqrt')
