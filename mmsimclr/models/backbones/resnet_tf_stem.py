"""ResNet v1 as in the SimCLR paper's TensorFlow code: mmpretrain's ``ResNet`` with a SAME-padded stem max pool."""
from mmpretrain.models.backbones import ResNet

from mmsimclr.registry import MODELS
from .tf_same_max_pool2d import TFSameMaxPool2d


@MODELS.register_module()
class ResNetTFStem(ResNet):
    """mmpretrain ``ResNet`` whose stem max pool follows TensorFlow's ``padding='SAME'``.

    The paper's ResNet (google-research/simclr ``resnet.py``) is ResNet v1 with the stride in the 3x3 convolution
    (``style='pytorch'``), every width times the multiplier including the stem (``stem_channels`` =
    ``base_channels`` = 64 x multiplier), BN epsilon 1e-5, and symmetric explicit padding before every strided
    convolution ((k - 1) // 2 before and after for odd k: what PyTorch's ``padding=k // 2`` does). The one thing
    ``ResNet`` cannot express is the stem's ``max_pooling2d(3, 2, padding='SAME')``, which pads 0 before / 1 after
    on an even-sized feature map (:class:`TFSameMaxPool2d`); everything else, keys included, is ``ResNet``'s, so
    converted checkpoints load into it and into tools that expect mmpretrain's key names.

    Args: as mmpretrain's ``ResNet`` (``deep_stem`` is refused: the paper's v1 stem is one 7x7 convolution).
    Shapes: ``(N, 3, H, W)`` -> the stage outputs of ``ResNet`` (e.g. ``(N, 2048 w, ceil(H/32), ceil(W/32))``).
    """

    def __init__(self, *args, **kwargs):
        if kwargs.get('deep_stem'):
            raise ValueError('ResNetTFStem: deep_stem=True is not the SimCLR (v1) stem; use mmpretrain ResNetV1c')
        super().__init__(*args, **kwargs)
        self.maxpool = TFSameMaxPool2d(kernel_size=3, stride=2)
