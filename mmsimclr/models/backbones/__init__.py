from .resnet_tf_stem import ResNetTFStem
from .tf_same_max_pool2d import TFSameMaxPool2d
from .resnet_sk import ResNetDShortcutPool, ResNetSK, SKBottleneck
from .selective_kernel_conv import SelectiveKernelConv2d

__all__ = ['ResNetTFStem', 'TFSameMaxPool2d', 'ResNetSK', 'SKBottleneck', 'ResNetDShortcutPool',
           'SelectiveKernelConv2d']
