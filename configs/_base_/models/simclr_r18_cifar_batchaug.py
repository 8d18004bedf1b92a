# SimCLR CIFAR ResNet-18 whose data preprocessor makes both views on the training device (batched, GPU if there is
# one): the CIFAR views of datasets/cifar10_bs512_simclr.py as distributions of SimCLRDataPreprocessor (crop area
# U[0.08, 1], aspect log-U[3/4, 4/3], flip p = 0.5, colour distortion s = 0.5 with p = 0.8, grayscale p = 0.2, no
# blur); mean / std / to_rgb from simclr_r18_cifar.py. Pair it with datasets/cifar10_bs512_simclr_batchaug.py.
_base_ = ['./simclr_r18_cifar.py']

model = dict(data_preprocessor={{_base_.batch_augmentation}})
