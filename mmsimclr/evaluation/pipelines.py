"""The evaluation pipelines: how an image is prepared when a model is evaluated (no augmentation).

One rule for every evaluation path (inference, feature extraction, kNN, t-SNE, linear transfer): the config's own
test (else val) dataloader pipeline when it has one (linear / supervised configs), else its ``test_pipeline``, which
every pretraining dataset base declares (CIFAR-10: squash to 32x32; ImageNet: resize 256, centre crop 224). Configs
that declare neither get:

- in :func:`eval_pipeline_of` (images of any size: inference, feature extraction) :func:`resize_crop_pipeline`,
  short side resized, centre crop (224 from 256 by default, ImageNet's protocol; SimCLR's transfer via a linear
  classifier, Appendix B.8.1, resizes the short side to ``size`` with bicubic resampling and crops ``size``);
- for the kNN / t-SNE datasets derived from the training set, :func:`eval_pipeline_from` its training pipeline:
  its loading steps only (the images of that data source, at their stored size).
"""
import copy
from typing import List, Optional, Sequence


def resize_crop_pipeline(crop: int = 224, resize: Optional[int] = None, interpolation: str = 'bilinear') -> List[dict]:
    """Load, resize the short side to ``resize`` (default ``crop * 256 / 224``) with PIL's ``interpolation``,
    centre-crop ``crop``, pack."""
    resize = round(crop * 256 / 224) if resize is None else resize
    return [dict(type='LoadImageFromFile'),
            dict(type='ResizeEdge', scale=resize, edge='short', backend='pillow', interpolation=interpolation),
            dict(type='CenterCrop', crop_size=crop), dict(type='PackInputs')]


#: The pipeline of configs without a test pipeline (SimCLR pretraining): resize 256, centre crop 224.
DEFAULT_EVAL_PIPELINE = resize_crop_pipeline()


def eval_pipeline_of(cfg) -> List[dict]:
    """The config's test (else val) dataloader pipeline, else its ``test_pipeline``, else
    :data:`DEFAULT_EVAL_PIPELINE`."""
    for loader in ('test_dataloader', 'val_dataloader'):
        pipeline = ((cfg.get(loader) or {}).get('dataset') or {}).get('pipeline')
        if pipeline:
            return list(pipeline)
    return list(cfg.get('test_pipeline') or DEFAULT_EVAL_PIPELINE)


def eval_pipeline_from(train_pipeline: Sequence[dict]) -> List[dict]:
    """Evaluation pipeline for a training pipeline: its loading steps (``Load*``) then ``PackInputs``.

    Good for datasets whose images already have the network's input size (CIFAR); for ImageNet-like data pass an
    explicit pipeline such as :func:`resize_crop_pipeline`.
    """
    loading = [copy.deepcopy(t) for t in train_pipeline if str(t.get('type', '')).startswith('Load')]
    return loading + [dict(type='PackInputs')]
