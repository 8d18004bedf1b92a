"""SimCLR's spatial augmentation: random resized crop followed by a random horizontal flip.

Paper (Chen et al. 2020, Appendix A): a crop whose area is uniform in [0.08, 1] of the image and whose aspect ratio
(width / height) is random in [3/4, 4/3] (sampled log-uniformly, as the Inception-style crop), resized to the output
size, then flipped horizontally with p = 0.5. The paper groups crop, resize and flip into one augmentation; so does
this transform.

Hand-written (not mmpretrain's ``RandomResizedCrop`` + ``RandomFlip``) for speed and for testability: the
parameters come from ``sample_params`` (checked directly by the statistical tests), the resize is one
``cv2.resize`` of the crop view (no copy of the crop; ``INTER_AREA`` when shrinking, so it is antialiased like
Pillow's bilinear, ``INTER_LINEAR`` when enlarging) and the flip is ``cv2.flip`` of the 224x224 result.
"""
import math
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmsimclr.registry import TRANSFORMS


def sample_crop_box(height: int, width: int, scale: Sequence[float], ratio: Sequence[float], rng,
                    attempts: int = 10) -> Tuple[int, int, int, int]:
    """One crop box ``(x, y, w, h)`` in pixels of a ``height x width`` image.

    ``area ~ U(scale) * H * W``, ``log(w / h) ~ U(log ratio)``, ``w = round(sqrt(area * r))``,
    ``h = round(sqrt(area / r))``; a draw that does not fit is redrawn (up to ``attempts`` times), after which the
    largest centred crop with the ratio clamped to ``ratio`` is used. The offset is uniform over all positions.
    ``rng`` is ``np.random`` (the global state mmengine seeds per worker), a ``RandomState`` or a ``Generator``.
    """
    total = float(height * width)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(attempts):
        area = rng.uniform(scale[0], scale[1]) * total
        r = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(area * r)))
        h = int(round(math.sqrt(area / r)))
        if 0 < w <= width and 0 < h <= height:
            x = min(int(rng.uniform() * (width - w + 1)), width - w)
            y = min(int(rng.uniform() * (height - h + 1)), height - h)
            return x, y, w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, max(1, min(height, int(round(width / ratio[0]))))
    elif in_ratio > ratio[1]:
        w, h = max(1, min(width, int(round(height * ratio[1])))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


@TRANSFORMS.register_module()
class RandomResizedCropFlip(BaseTransform):
    """Random resized crop + horizontal flip of ``results['img']`` ``(H, W, C)`` -> ``(size_h, size_w, C)``.

    Args:
        size: output side (int) or ``(height, width)``.
        scale: range of the crop area as a fraction of the image area. Paper: ``(0.08, 1.0)``.
        ratio: range of the crop aspect ratio ``w / h`` (log-uniform). Paper: ``(3/4, 4/3)``.
        flip_prob: probability of the horizontal flip. Paper: 0.5.

    The sampled parameters are stored in ``results['aug_params']['crop_flip']``.
    """

    def __init__(self, size: Union[int, Sequence[int]] = 224, scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3. / 4., 4. / 3.), flip_prob: float = 0.5):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if not (0 < scale[0] <= scale[1] <= 1) or not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f'bad scale {scale} or ratio {ratio}')
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.flip_prob = flip_prob

    def sample_params(self, height: int, width: int, rng=None) -> dict:
        """``dict(x, y, w, h, flip)`` for a ``height x width`` image (``rng``: see ``sample_crop_box``)."""
        rng = np.random if rng is None else rng
        x, y, w, h = sample_crop_box(height, width, self.scale, self.ratio, rng)
        return dict(x=x, y=y, w=w, h=h, flip=bool(rng.uniform() < self.flip_prob))

    def apply(self, img: np.ndarray, params: dict) -> np.ndarray:
        x, y, w, h = params['x'], params['y'], params['w'], params['h']
        out_h, out_w = self.size
        interp = cv2.INTER_AREA if (w > out_w or h > out_h) else cv2.INTER_LINEAR
        out = cv2.resize(img[y:y + h, x:x + w], (out_w, out_h), interpolation=interp)
        if out.ndim == 2 and img.ndim == 3:  # cv2 drops a trailing singleton channel
            out = out[..., None]
        if params['flip']:
            out = cv2.flip(out, 1)
            if out.ndim == 2 and img.ndim == 3:
                out = out[..., None]
        return out

    def transform(self, results: dict) -> dict:
        img = results['img']
        params = self.sample_params(img.shape[0], img.shape[1])
        results['img'] = self.apply(img, params)
        results['img_shape'] = results['img'].shape[:2]
        results.setdefault('aug_params', {})['crop_flip'] = params
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio}, '
                f'flip_prob={self.flip_prob})')
