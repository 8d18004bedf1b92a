# The tiny smoke-test run with batched augmentation: the loader only decodes; SimCLRDataPreprocessor makes both views
# (crop, flip, colour s = 0.5, no blur: CIFAR settings) on the training device, GPU if there is one. The same two
# settings as models/simclr_r18_cifar_batchaug.py + datasets/cifar10_bs512_simclr_batchaug.py, on the tiny config.
_base_ = ['./simclr_r18_1xb16-coslr-2e_tiny.py']

model = dict(data_preprocessor={{_base_.batch_augmentation}})
train_dataloader = dict(dataset=dict(pipeline={{_base_.decode_pipeline}}))
