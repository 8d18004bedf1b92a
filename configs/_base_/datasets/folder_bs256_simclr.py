# Your own images, unlabelled: every image under data_root, at any depth (jpg / jpeg / png / webp / bmp / tif in any
# letter case, any size, grayscale / RGBA / 16-bit; hidden and non-image files ignored; unreadable files named in a
# warning and skipped). Point it at them with --cfg-options train_dataloader.dataset.data_root=DIR.
# The file list is made once, by rank 0, and kept as <work_dir>/file_list.txt (delete it to list again).
# 2000 images (at most 10% of the folder) are held out of training: LabelFreeMonitorHook measures them.
# Views: the paper's ImageNet augmentation at 224 (imagenet_bs256_simclr.py); evaluation (label-free monitor,
# inference_model / extract_features / tools/analysis/neighbours.py of these models): short side 256, centre crop 224.
_base_ = ['./imagenet_bs256_simclr.py']

data_root = 'data/my_images/'
test_pipeline = [
    dict(type='LoadImageColor'),  # any file (16-bit, RGBA, ...) and a named skip for a broken one
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='UnlabeledImageFolder',
        data_root=data_root,
        holdout=2000,
        pipeline={{_base_.train_pipeline}}))

# progress without labels, on the held-out images: RankMe, alignment, uniformity, contrast_acc every 10 epochs
# (+ before training and after the last), with a collapse warning and <work_dir>/label_free_metrics.png
custom_hooks = [dict(type='LabelFreeMonitorHook', interval=10, num_images=2000, batch_size=256, num_workers=8)]
