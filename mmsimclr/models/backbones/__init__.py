from .resnet_tf_stem import ResNetTFStem
from .tf_same_max_pool2d import TFSameMaxPool2d

__all__ = ['ResNetTFStem', 'TFSameMaxPool2d']
