"""Centred square crop of a fraction of the shorter side (the SimCLR paper's evaluation crop)."""
import numpy as np
from mmcv.transforms import BaseTransform

from mmsimclr.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CenterCropFraction(BaseTransform):
    """Crop the centred square of side ``rint(fraction * min(h, w))`` (the paper's ``center_crop`` with
    ``CROP_PROPORTION = 0.875`` and a square output, before resizing to 224).

    The offset is ``(size - side + 1) // 2`` on each axis (TensorFlow's rounding, which puts an odd leftover pixel
    before the crop) and ``rint`` rounds halves to even as ``tf.rint`` does. Follow it with
    ``dict(type='Resize', scale=(224, 224), interpolation='bicubic')``: crop then resize, unlike mmpretrain's
    ``ResizeEdge(256)`` + ``CenterCrop(224)``, which resizes first.

    Required keys: ``img`` (H, W, C). Modified keys: ``img``, ``img_shape``.

    Args:
        fraction: the kept fraction of the shorter side, in (0, 1].
    """

    def __init__(self, fraction: float = 0.875):
        if not 0 < fraction <= 1:
            raise ValueError(f'CenterCropFraction: fraction must be in (0, 1], got {fraction}')
        self.fraction = fraction

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        side = max(int(np.rint(self.fraction * min(h, w))), 1)
        top, left = (h - side + 1) // 2, (w - side + 1) // 2
        results['img'] = img[top:top + side, left:left + side]
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(fraction={self.fraction})'
