"""SimCLR's colour distortion of strength ``s`` on uint8 images.

Paper (Chen et al. 2020, Appendix A):

* with p = 0.8, colour jitter: brightness factor ``b ~ U[max(0, 1 - 0.8s), 1 + 0.8s]`` (``x -> b x``), contrast
  ``c ~ U[max(0, 1 - 0.8s), 1 + 0.8s]`` (``x -> c x + (1 - c) mean(gray(x))``), saturation ``a`` in the same
  range (``x -> a x + (1 - a) gray(x)``) and hue shift ``d ~ U[-0.2s, 0.2s]`` turns (rotation of the HSV hue), the
  four applied in a uniformly random order;
* then, independently, with p = 0.2, conversion to grayscale (kept as 3 channels).

ImageNet uses s = 1, CIFAR-10 s = 0.5.

Hand-written for speed: everything stays uint8 and goes through OpenCV. Brightness and contrast are 256-entry
lookup tables (``cv2.LUT``; the contrast mean is the luma-weighted mean of ``cv2.mean``'s channel means, no gray
image needed), saturation is ``cv2.addWeighted`` with the gray image, hue is an HSV round trip with a LUT on the hue
channel (:func:`adjust_hue`). mmpretrain's ``ColorJitter`` goes through mmcv's float implementations, and mmcv
2.2.0's ``adjust_hue`` shifts the hue with ``np.uint8(hue_factor * 255)``: for a negative factor an out-of-range
conversion, which numpy 2 rejects, so it crashes on about half of all images. :func:`adjust_hue` does the same
cyclic shift of OpenCV's full-range (0-255) hue with the shift taken modulo 256, through a lookup table.
"""

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmsimclr.registry import TRANSFORMS

_LEVELS = np.arange(256, dtype=np.float32)
_LUMA_BGR = (0.114, 0.587, 0.299)  # ITU-R BT.601 weights for B, G, R


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


def _lut(scale: float, offset: float) -> np.ndarray:
    """uint8 table of ``round(clip(scale * v + offset, 0, 255))``."""
    return np.clip(_LEVELS * scale + (offset + 0.5), 0, 255).astype(np.uint8)


@TRANSFORMS.register_module()
class ColorDistortion(BaseTransform):
    """Random colour jitter (p = ``jitter_prob``) then random grayscale (p = ``gray_prob``) of
    ``results['img']`` ``(H, W, 3)`` uint8; output has the same shape and dtype.

    Args:
        strength: ``s``; jitter magnitudes are brightness = contrast = saturation = 0.8s, hue = 0.2s.
        jitter_prob: probability of the jitter. Paper: 0.8.
        gray_prob: probability of the grayscale conversion. Paper: 0.2.
        channel_order: channel order of the image, ``'bgr'`` (as loaded by OpenCV) or ``'rgb'``.

    The sampled parameters are stored in ``results['aug_params']['color']``.
    """

    OPS = ('brightness', 'contrast', 'saturation', 'hue')

    def __init__(self, strength: float = 1.0, jitter_prob: float = 0.8, gray_prob: float = 0.2,
                 channel_order: str = 'bgr'):
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f'channel_order must be "bgr" or "rgb", got {channel_order!r}')
        if not 0 <= 0.2 * strength <= 0.5:
            raise ValueError(f'strength {strength} gives a hue range outside [-0.5, 0.5]')
        self.strength = strength
        self.jitter_prob = jitter_prob
        self.gray_prob = gray_prob
        self.channel_order = channel_order
        self._luma = _LUMA_BGR if channel_order == 'bgr' else _LUMA_BGR[::-1]
        self._to_gray = cv2.COLOR_BGR2GRAY if channel_order == 'bgr' else cv2.COLOR_RGB2GRAY

    def sample_params(self, rng=None) -> dict:
        """``dict(jitter, order, brightness, contrast, saturation, hue, gray)``; ``order`` is a permutation of
        ``0..3`` indexing ``OPS``. ``rng``: ``np.random`` (default), a ``RandomState`` or a ``Generator``."""
        rng = np.random if rng is None else rng
        m = 0.8 * self.strength
        h = 0.2 * self.strength
        jitter = bool(rng.uniform() < self.jitter_prob)
        order = tuple(int(i) for i in np.argsort(rng.uniform(size=4)))
        brightness = float(rng.uniform(max(0., 1. - m), 1. + m))
        contrast = float(rng.uniform(max(0., 1. - m), 1. + m))
        saturation = float(rng.uniform(max(0., 1. - m), 1. + m))
        hue = float(rng.uniform(-h, h))
        gray = bool(rng.uniform() < self.gray_prob)
        return dict(jitter=jitter, order=order, brightness=brightness, contrast=contrast, saturation=saturation,
                    hue=hue, gray=gray)

    def _gray3(self, img: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(cv2.cvtColor(img, self._to_gray), cv2.COLOR_GRAY2BGR)

    def apply(self, img: np.ndarray, params: dict) -> np.ndarray:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise TypeError(f'ColorDistortion needs a (H, W, 3) uint8 image, got {img.shape} {img.dtype}')
        if params['jitter']:
            for op in params['order']:
                if op == 0:  # brightness: b * x
                    img = cv2.LUT(img, _lut(params['brightness'], 0.))
                elif op == 1:  # contrast: c * x + (1 - c) * mean(gray(x))
                    c = params['contrast']
                    mean = float(np.dot(self._luma, cv2.mean(img)[:3]))
                    img = cv2.LUT(img, _lut(c, (1. - c) * mean))
                elif op == 2:  # saturation: a * x + (1 - a) * gray(x)
                    a = params['saturation']
                    img = cv2.addWeighted(img, a, self._gray3(img), 1. - a, 0.)
                else:  # hue: rotate H by d turns (BGR<->RGB mirrors the hue circle, hence the sign)
                    d = params['hue']
                    if int(round(d * 255)) % 256:  # a zero step of the 8-bit hue is the identity: skip the round trip
                        img = adjust_hue(img, d if self.channel_order == 'bgr' else -d)
        if params['gray']:
            img = self._gray3(img)
        return img

    def transform(self, results: dict) -> dict:
        params = self.sample_params()
        results['img'] = self.apply(results['img'], params)
        results.setdefault('aug_params', {})['color'] = params
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(strength={self.strength}, jitter_prob={self.jitter_prob}, '
                f'gray_prob={self.gray_prob}, channel_order={self.channel_order!r})')
