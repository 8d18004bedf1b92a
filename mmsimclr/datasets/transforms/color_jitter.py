"""Colour jitter that works on numpy 2.

mmcv 2.2.0's ``adjust_hue`` shifts the hue channel with ``np.uint8(hue_factor * 255)``; for a negative factor that
is an out-of-range conversion, which numpy 2 rejects, so mmpretrain's SimCLR pipeline (hue factor uniform in
[-0.2, 0.2]) crashes on about half of all images. ``adjust_hue`` below does the same cyclic shift of OpenCV's
full-range (0-255) hue with the shift taken modulo 256 and applied through a lookup table.
"""
import cv2
import numpy as np
from mmpretrain.datasets.transforms import ColorJitter as _MMPretrainColorJitter

from mmsimclr.registry import TRANSFORMS


def adjust_hue(img: np.ndarray, hue_factor: float) -> np.ndarray:
    """Rotate the hue of a uint8 BGR image ``(H, W, 3)`` by ``hue_factor`` turns, ``hue_factor`` in [-0.5, 0.5]."""
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f'hue_factor {hue_factor} is not in [-0.5, 0.5]')
    if img.ndim != 3 or img.shape[2] != 3:
        return img  # hue is undefined for single-channel images
    dtype = img.dtype
    shift = int(round(hue_factor * 255)) % 256
    hsv = cv2.cvtColor(img.astype(np.uint8, copy=False), cv2.COLOR_BGR2HSV_FULL)
    lut = ((np.arange(256) + shift) % 256).astype(np.uint8)
    hsv[..., 0] = cv2.LUT(hsv[..., 0], lut)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL).astype(dtype, copy=False)


@TRANSFORMS.register_module()
class ColorJitter(_MMPretrainColorJitter):
    """mmpretrain's ``ColorJitter`` (same arguments, same random order of the four operations) with a numpy-2
    safe hue shift."""

    def transform(self, results: dict) -> dict:
        import mmcv
        img = results['img']
        order, brightness, contrast, saturation, hue = self._rand_params()
        for index in order:
            if index == 0 and brightness is not None:
                img = mmcv.adjust_brightness(img, brightness, backend=self.backend)
            elif index == 1 and contrast is not None:
                img = mmcv.adjust_contrast(img, contrast, backend=self.backend)
            elif index == 2 and saturation is not None:
                img = mmcv.adjust_color(img, alpha=saturation, backend=self.backend)
            elif index == 3 and hue is not None:
                img = adjust_hue(img, hue)
        results['img'] = img
        return results
