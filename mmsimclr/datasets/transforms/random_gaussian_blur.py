"""SimCLR's Gaussian blur.

Paper (Chen et al. 2020, Appendix A): with p = 0.5, blur with a Gaussian kernel whose side is 10% of the image side
and whose standard deviation is ``sigma ~ U[0.1, 2.0]`` pixels. Here the side is made odd as in the authors' code
(``radius = int(0.1 * side) // 2``, ``k = 2 * radius + 1``: 23 for 224), with reflected borders.

Hand-written for speed: ``cv2.GaussianBlur`` is separable and runs in fixed point on uint8 (about 0.2-0.8 ms for a
224x224 view with the exact 23-tap kernel); mmpretrain's ``GaussianBlur`` goes through a Pillow image and Pillow's
box-filter approximation (not the 10% kernel).
"""
from typing import Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmsimclr.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomGaussianBlur(BaseTransform):
    """Gaussian blur of ``results['img']`` ``(H, W, C)`` with probability ``prob``; same shape and dtype.

    Args:
        prob: probability of blurring. Paper: 0.5.
        sigma_range: range of the uniform sigma, in pixels. Paper: ``(0.1, 2.0)``.
        kernel_frac: kernel side as a fraction of the image side. Paper: 0.1.

    The sampled parameters are stored in ``results['aug_params']['blur']``.
    """

    def __init__(self, prob: float = 0.5, sigma_range: Sequence[float] = (0.1, 2.0), kernel_frac: float = 0.1):
        self.prob = prob
        self.sigma_range = tuple(sigma_range)
        self.kernel_frac = kernel_frac

    def kernel_size(self, side: int) -> int:
        """Odd kernel side for an image side: ``2 * (int(kernel_frac * side) // 2) + 1``."""
        return 2 * (int(self.kernel_frac * side) // 2) + 1

    def sample_params(self, rng=None) -> dict:
        """``dict(blur, sigma)``; ``rng``: ``np.random`` (default), a ``RandomState`` or a ``Generator``."""
        rng = np.random if rng is None else rng
        blur = bool(rng.uniform() < self.prob)
        return dict(blur=blur, sigma=float(rng.uniform(*self.sigma_range)))

    def apply(self, img: np.ndarray, params: dict) -> np.ndarray:
        if not params['blur']:
            return img
        height, width = img.shape[:2]
        kx, ky = self.kernel_size(width), self.kernel_size(height)
        if kx == 1 and ky == 1:
            return img
        out = cv2.GaussianBlur(img, (kx, ky), sigmaX=params['sigma'], sigmaY=params['sigma'],
                               borderType=cv2.BORDER_REFLECT_101)
        return out[..., None] if out.ndim == 2 and img.ndim == 3 else out

    def transform(self, results: dict) -> dict:
        params = self.sample_params()
        results['img'] = self.apply(results['img'], params)
        results.setdefault('aug_params', {})['blur'] = params
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, sigma_range={self.sigma_range}, '
                f'kernel_frac={self.kernel_frac})')
