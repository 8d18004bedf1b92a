# SimCLR ResNet-50 whose data preprocessor makes both views on the training device (batched, GPU if there is one)
# with the ImageNet distributions of datasets/imagenet_bs256_simclr.py: crop area U[0.08, 1], aspect
# log-U[3/4, 4/3], flip p = 0.5, colour distortion s = 1 with p = 0.8, grayscale p = 0.2, blur p = 0.5 (sigma
# U[0.1, 2], kernel 10% of the side); mean / std / to_rgb from simclr_r50.py.
# Pair it with datasets/imagenet_bs256_simclr_batchaug.py.
_base_ = ['./simclr_r50.py']

model = dict(data_preprocessor={{_base_.batch_augmentation}})
