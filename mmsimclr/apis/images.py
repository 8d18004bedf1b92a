"""Turning user images (paths, numpy arrays, PIL images) into model inputs with a config's evaluation pipeline.

Classifier configs bring their own test pipeline (resize the short edge to 256, centre-crop 224, pack). Configs
without one (SimCLR pretraining) get the same evaluation transform, :data:`DEFAULT_EVAL_PIPELINE` (both chosen by
:func:`mmsimclr.evaluation.pipelines.eval_pipeline_of`).

Colour convention (OpenMMLab's): numpy arrays are BGR, as ``cv2.imread``/``mmcv.imread`` return them; PIL images
are converted from their own mode. Grayscale arrays are replicated to three channels.

A file that cannot be read is reported as training's loader (``LoadImageColor``) reports it: a
:class:`~mmsimclr.datasets.transforms.load_image_color.BadImageError` that names the file and the reason -- an empty
file, a JPEG cut off before its end-of-image marker, or anything the pipeline's loader fails on (OpenCV's bare
``!buf.empty()`` among them).
"""
import os
import os.path as osp
from typing import Callable, List, Sequence, Union

import numpy as np
from mmengine.dataset import Compose
from PIL import Image

from mmsimclr.datasets.image_folder import IMAGE_EXTENSIONS, list_images
from mmsimclr.datasets.transforms.load_image_color import BadImageError, jpeg_is_truncated
from mmsimclr.evaluation.pipelines import DEFAULT_EVAL_PIPELINE, eval_pipeline_of
from mmsimclr.registry import TRANSFORMS

__all__ = ['DEFAULT_EVAL_PIPELINE', 'IMAGE_EXTENSIONS', 'ImageLike', 'ImagePreparer', 'expand_images',
           'to_bgr_array']

ImageLike = Union[str, np.ndarray, 'Image.Image']


def _is_loader(step: dict) -> bool:
    return str(step.get('type', '')).startswith('LoadImage')


class ImagePreparer:
    """Callable ``image -> {'inputs': CHW uint8 tensor, 'data_samples': DataSample}`` for one config."""

    def __init__(self, cfg):
        steps = eval_pipeline_of(cfg)
        loaders = [s for s in steps if _is_loader(s)]
        rest = [TRANSFORMS.build(s) for s in steps if not _is_loader(s)]
        self.load: Callable = TRANSFORMS.build(loaders[0] if loaders else DEFAULT_EVAL_PIPELINE[0])
        self.from_array: Callable = Compose(rest)

    def __call__(self, image: ImageLike) -> dict:
        if isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
            if not osp.isfile(path):
                raise FileNotFoundError(f'Image {path} does not exist')
            return self._load(path)
        array = to_bgr_array(image)
        return self.from_array(dict(img=array, img_shape=array.shape[:2], ori_shape=array.shape[:2]))

    def _load(self, path: str) -> dict:
        """The pipeline on a file; a failure to *read* it (not of the later steps) becomes a :class:`BadImageError`
        naming the file."""
        with open(path, 'rb') as f:
            data = f.read()
        reason, cause = None, None
        if not data:
            reason = 'the file is empty (0 bytes)'
        elif jpeg_is_truncated(data):
            reason = 'truncated JPEG (no end-of-image marker)'
        else:
            try:
                loaded = self.load(dict(img_path=path))
            except Exception as e:  # the loader's own error rarely names the file (cv2: "!buf.empty()")
                reason = f'{type(e).__name__}: {str(e).strip() or "cannot decode"}'
                cause = e
            else:
                if loaded is not None:
                    return self.from_array(loaded)
                reason = 'its loader could not decode it'  # e.g. LoadImageColor(on_bad_image='skip')
        error = BadImageError(f'Cannot read image {path}: {reason}. Remove or replace the file.')
        error.path, error.reason = path, reason
        raise error from cause


def to_bgr_array(image) -> np.ndarray:
    """``(H, W, 3)`` uint8 BGR array from a numpy array (BGR or grayscale) or a PIL image."""
    if isinstance(image, Image.Image):
        return np.ascontiguousarray(np.asarray(image.convert('RGB'))[:, :, ::-1])
    if not isinstance(image, np.ndarray):
        raise TypeError(f'Unsupported image type {type(image).__name__}; pass a file path, a numpy array '
                        '(H, W, 3) BGR uint8, or a PIL image')
    if image.dtype != np.uint8:
        raise TypeError(f'Image array has dtype {image.dtype}; convert it to uint8 in [0, 255] first '
                        '(e.g. (x * 255).round().astype(np.uint8))')
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'Image array has shape {image.shape}; expected (H, W, 3) BGR or (H, W) grayscale')
    return np.ascontiguousarray(image)


def expand_images(images: Union[ImageLike, Sequence[ImageLike]]) -> List[ImageLike]:
    """A list of images from one image, a sequence of them, or a folder (its image files, sorted, recursively;
    see :func:`mmsimclr.datasets.image_folder.list_images`)."""
    if isinstance(images, (str, os.PathLike)) and osp.isdir(images):
        found = [osp.join(images, rel) for rel in list_images(images)]  # nested, hidden files left out
        if not found:
            raise FileNotFoundError(f'Folder {images} holds no image files ({", ".join(IMAGE_EXTENSIONS)})')
        return found
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]
