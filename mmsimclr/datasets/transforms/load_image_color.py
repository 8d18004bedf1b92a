"""Image loading for the SimCLR pipelines: any file becomes a 3-channel uint8 image.

Hand-written instead of mmcv's ``LoadImageFromFile`` for two reasons:

* speed: one ``cv2.imdecode`` (libjpeg-turbo, about half the time of a Pillow decode on a 500x375 JPEG), and,
  when ``min_side`` is given, JPEG DCT-domain downscaling (``IMREAD_REDUCED_COLOR_{2,4,8}``) so that a large photo
  is decoded at the smallest power-of-two reduction whose shorter side is still >= ``min_side``;
* robustness: OpenCV's ``IMREAD_COLOR`` already turns grayscale, RGBA (alpha dropped), palette, CMYK and 16-bit
  files into 8-bit colour; anything OpenCV cannot decode goes through Pillow, where every mode is mapped to RGB
  explicitly (16-bit and 32-bit integer or float images are rescaled to 0-255, not clipped).

A file that cannot be decoded (zero bytes, truncated JPEG, not an image) is either skipped (``on_bad_image='skip'``,
the default: the transform returns None, so mmengine's dataset draws another sample, and a warning names the file
and counts the skips of this process) or raises :class:`BadImageError` naming the file (``on_bad_image='raise'``).
"""
import io
import logging
from typing import Optional, Tuple

import cv2
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from PIL import Image, ImageOps

from mmsimclr.registry import TRANSFORMS


class BadImageError(ValueError):
    """An image file cannot be decoded; the message names the file."""


def jpeg_is_truncated(data: bytes) -> bool:
    """Whether a JPEG stream lacks the end-of-image marker after its last scan (a cut-off file). Decoders fill
    the missing part with grey instead of failing; such files are treated as unreadable. Bytes after the marker
    (camera trailers) are allowed."""
    if data[:2] != b'\xff\xd8':
        return False
    last_scan = data.rfind(b'\xff\xda')  # entropy-coded data escapes 0xFF, so this is a marker
    return last_scan < 0 or data.find(b'\xff\xd9', last_scan) < 0


_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def _pil_to_rgb(pil: Image.Image) -> np.ndarray:
    """Any Pillow image -> ``(H, W, 3)`` uint8 RGB."""
    pil = ImageOps.exif_transpose(pil)
    if pil.mode in ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F'):
        arr = np.asarray(pil).astype(np.float64)
        if pil.mode.startswith('I;16'):
            arr = arr / 257.0  # 0..65535 -> 0..255
        else:
            lo, hi = float(arr.min()), float(arr.max())
            if lo < 0 or hi > 255:  # 32-bit data: stretch the used range; 8-bit-valued data keeps its values
                arr = (arr - lo) * (255.0 / max(hi - lo, 1e-12))
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if pil.mode != 'RGB':
        pil = pil.convert('RGBA').convert('RGB') if pil.mode in ('P', 'PA', 'LA') else pil.convert('RGB')
    return np.asarray(pil)


@TRANSFORMS.register_module()
class LoadImageColor(BaseTransform):
    """Read ``results['img_path']`` into ``results['img']``: ``(H, W, 3)`` uint8 in ``channel_order``.

    Also sets ``img_shape`` (decoded ``(H, W)``) and ``ori_shape`` (``(H, W)`` of the file at full resolution,
    which the batched SimCLR data preprocessor uses to sample crops in original pixels).

    Args:
        channel_order: ``'bgr'`` (default, as ``LoadImageFromFile``; the SimCLR data preprocessors flip it with
            ``to_rgb=True``) or ``'rgb'``.
        min_side: if set, JPEGs are decoded at 1/2, 1/4 or 1/8 scale (the largest whose shorter side stays
            >= ``min_side``). ``None`` decodes at full resolution.
        backend_args: mmengine file backend arguments.
        on_bad_image: ``'skip'`` (return None and log the file) or ``'raise'`` (:class:`BadImageError`) for a file
            that cannot be decoded.
    """

    def __init__(self, channel_order: str = 'bgr', min_side: Optional[int] = None,
                 backend_args: Optional[dict] = None, on_bad_image: str = 'skip'):
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f'channel_order must be "bgr" or "rgb", got {channel_order!r}')
        if on_bad_image not in ('skip', 'raise'):
            raise ValueError(f'on_bad_image must be "skip" or "raise", got {on_bad_image!r}')
        self.on_bad_image = on_bad_image
        self.skipped = 0
        self.channel_order = channel_order
        self.min_side = min_side
        self.backend_args = backend_args

    def _reduction(self, data: bytes) -> Tuple[int, Optional[Tuple[int, int]]]:
        """Power-of-two JPEG reduction allowed by ``min_side`` and the header's ``(H, W)``."""
        if not self.min_side or data[:2] != b'\xff\xd8':
            return 1, None
        try:
            width, height = Image.open(io.BytesIO(data)).size  # header only
        except Exception:
            return 1, None
        factor = 1
        for k in (8, 4, 2):
            if min(height, width) // k >= self.min_side:
                factor = k
                break
        return factor, (height, width)

    def decode(self, data: bytes) -> Tuple[np.ndarray, Tuple[int, int]]:
        """Bytes -> (``(H, W, 3)`` uint8 image in ``channel_order``, full-resolution ``(H, W)``)."""
        factor, header_hw = self._reduction(data)
        buf = np.frombuffer(data, np.uint8)
        img = cv2.imdecode(buf, _REDUCED_FLAGS[factor] if factor > 1 else cv2.IMREAD_COLOR)
        if img is None or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            with Image.open(io.BytesIO(data)) as pil:
                img = _pil_to_rgb(pil)
            factor = 1
            if self.channel_order == 'bgr':
                img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        elif self.channel_order == 'rgb':
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        ori_hw = tuple(img.shape[:2])
        if factor > 1 and header_hw is not None:
            height, width = header_hw
            if (img.shape[0] > img.shape[1]) != (height > width):  # EXIF rotation swapped the sides
                height, width = width, height
            ori_hw = (height, width)
        return img, ori_hw

    def _read(self, path: str) -> Tuple[np.ndarray, Tuple[int, int]]:
        data = fileio.get(path, backend_args=self.backend_args)
        if not data:
            raise ValueError('the file is empty (0 bytes)')
        if jpeg_is_truncated(data):
            raise ValueError('truncated JPEG (no end-of-image marker)')
        return self.decode(data)

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        try:
            img, ori_hw = self._read(path)
        except Exception as e:  # any failure to read or decode: name the file
            reason = f'{type(e).__name__}: {str(e).strip() or "cannot decode"}'
            if self.on_bad_image == 'raise':
                raise BadImageError(f'Cannot read image {path}: {reason}. Remove or replace the file, or set '
                                    'on_bad_image="skip" in LoadImageColor to skip unreadable images.') from e
            self.skipped += 1
            print_log(f'Skipped unreadable image {path} ({reason}); {self.skipped} image(s) skipped so far in '
                      f'this process', logger='current', level=logging.WARNING)
            return None
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = ori_hw
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(channel_order={self.channel_order!r}, min_side={self.min_side}, '
                f'on_bad_image={self.on_bad_image!r})')
