"""Inference with a built model (or a model-zoo name): class predictions and feature extraction.

- Classifiers (``ImageClassifier``) give, per image, ``pred_label`` (int), ``pred_score`` (its probability),
  ``pred_class`` (class name, e.g. from ImageNet; None when unknown) and ``pred_scores`` (all probabilities).
- Pretraining-only models (SimCLR) give their representation instead: ``feat`` (pooled backbone embedding ``h``)
  and ``proj`` (projection ``z``) -- where mmpretrain's inferencers reject self-supervised models.

An image file that cannot be read raises ``BadImageError`` naming the file in :func:`inference_model`; in
:func:`extract_features` it is skipped with a warning naming the file by default (as training's ``LoadImageColor``
skips it), and ``paths`` / ``indices`` in the result say which input each row of features belongs to.
"""
import os
import warnings
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mmsimclr.datasets.transforms.load_image_color import BadImageError
from mmsimclr.evaluation.features import embed, preprocess
from .images import ImageLike, ImagePreparer, expand_images
from .model import get_model


def _as_model(model, device: Optional[str]) -> torch.nn.Module:
    if isinstance(model, torch.nn.Module):
        if device is not None:
            model = model.to(device)
        return model.eval()
    if isinstance(model, (str, Config)):
        return get_model(model, pretrained=True, device=device)
    raise TypeError(f'Expected a model (nn.Module), a model-zoo name or a config, got {type(model).__name__}')


def is_classifier(model: torch.nn.Module) -> bool:
    """Whether ``model`` predicts classes (mmpretrain ``ImageClassifier`` or anything with a ``num_classes`` head)."""
    # lazy: mmpretrain.models imports all of mmpretrain's models, seconds that `import mmsimclr` should not pay
    from mmpretrain.models import ImageClassifier
    return isinstance(model, ImageClassifier)


def _preparer(model) -> ImagePreparer:
    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        raise ValueError('The model has no .cfg (its Config); build it with mmsimclr.get_model, or set model.cfg')
    cached = getattr(model, '_mmsimclr_preparer', None)
    if cached is None or cached[0] is not cfg:
        cached = (cfg, ImagePreparer(cfg))
        model._mmsimclr_preparer = cached
    return cached[1]


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _preprocess(model, packed: List[dict]):
    shapes = {tuple(p['inputs'].shape) for p in packed}
    if len(shapes) > 1:
        raise ValueError(f'The evaluation pipeline gave images of different sizes {sorted(shapes)}; add a '
                         "CenterCrop to the config's test pipeline or use batch_size=1")
    return preprocess(model, dict(inputs=torch.stack([p['inputs'] for p in packed]),
                                  data_samples=[p['data_samples'] for p in packed]))


def _classify(model, inputs, samples) -> List[dict]:
    classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    results = []
    for sample in model(inputs, samples, mode='predict'):
        scores = sample.pred_score.float().cpu().numpy()
        label = int(sample.pred_label.item()) if sample.pred_label.numel() == 1 else int(scores.argmax())
        results.append(dict(pred_label=label, pred_score=float(scores[label]),
                            pred_class=classes[label] if classes and label < len(classes) else None,
                            pred_scores=scores))
    return results


@torch.no_grad()
def inference_model(model: Union[torch.nn.Module, str, Config], images: Union[ImageLike, Sequence[ImageLike]],
                    batch_size: int = 8, device: Optional[str] = None) -> Union[dict, List[dict]]:
    """Predict one image or a list of images (paths, BGR numpy arrays, PIL images, or a folder).

    Args:
        model: a model from :func:`get_model`, or a model-zoo name / config (built with its published weights).
        images: one image, a list of them, or a folder of image files.
        batch_size: images per forward pass.
        device: where to run a model built here (default: GPU if available); moves a given model there.

    Returns:
        For one image a dict, for a list (or folder) a list of dicts: classifiers ``pred_label``, ``pred_score``,
        ``pred_class``, ``pred_scores``; SimCLR models ``feat`` (and ``proj``) as numpy arrays.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    single = not isinstance(images, (list, tuple)) and not (
        isinstance(images, (str, os.PathLike)) and os.path.isdir(images))
    model = _as_model(model, device)
    prepare = _preparer(model)
    results: List[dict] = []
    for batch in _batches(expand_images(images), batch_size):
        inputs, samples = _preprocess(model, [prepare(img) for img in batch])
        if is_classifier(model):
            results += _classify(model, inputs, samples)
        else:
            out = {k: v.float().cpu().numpy() for k, v in embed(model, inputs).items()}
            results += [{k: v[i] for k, v in out.items()} for i in range(len(batch))]
    return results[0] if single else results


@torch.no_grad()
def extract_features(model: Union[torch.nn.Module, str, Config], images: Union[ImageLike, Sequence[ImageLike]],
                     batch_size: int = 32, device: Optional[str] = None, progress: bool = True,
                     on_bad_image: str = 'skip') -> Dict[str, Union[np.ndarray, List[Optional[str]]]]:
    """Embeddings of many images, batched, with a progress bar.

    Args:
        model: a model from :func:`get_model`, or a model-zoo name / config (built with its published weights).
        images: image files, arrays or PIL images, or a folder (its image files, sorted, recursively).
        batch_size: images per forward pass.
        device: where to run a model built here (default: GPU if available); moves a given model there.
        progress: show a progress bar on stderr.
        on_bad_image: a file that cannot be read (empty, truncated, not an image) is ``'skip'``-ped with a warning
            that names it (the default, as in training), or ``'raise'``-s ``BadImageError`` naming it.

    Returns:
        ``'feat'``: ``(N, C)`` float32, the pooled backbone features (SimCLR's ``h``; for a classifier, the
        features its linear head sees); ``'proj'``: ``(N, d)`` for SimCLR models; ``'paths'``: the N file paths
        the rows belong to (None for in-memory images); ``'indices'``: ``(N,)`` int64, each row's position in
        ``images`` (for a folder, in its sorted file list). N is fewer than the inputs when bad files are skipped.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    if on_bad_image not in ('skip', 'raise'):
        raise ValueError(f'on_bad_image must be "skip" or "raise", got {on_bad_image!r}')
    model = _as_model(model, device)
    prepare = _preparer(model)
    items = expand_images(images)
    chunks: Dict[str, List[np.ndarray]] = {}
    kept: List[int] = []
    skipped: List[str] = []
    bar = Progress(TextColumn('Extracting features'), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), disable=not progress)
    with bar:
        task = bar.add_task('features', total=len(items))
        for start in range(0, len(items), batch_size):
            packed, rows = [], []
            for index in range(start, min(start + batch_size, len(items))):
                try:
                    packed.append(prepare(items[index]))
                except BadImageError as e:
                    if on_bad_image == 'raise':
                        raise
                    skipped.append(e.path)
                    warnings.warn(f'Skipped unreadable image {e.path} ({e.reason}); {len(skipped)} image(s) '
                                  'skipped so far. Its row is left out: match rows to files with the result\'s '
                                  '"paths". Pass on_bad_image="raise" to stop instead.', stacklevel=2)
                    continue
                rows.append(index)
            if packed:
                inputs, _ = _preprocess(model, packed)
                for key, value in embed(model, inputs).items():
                    chunks.setdefault(key, []).append(value.float().cpu().numpy())
                kept += rows
            bar.advance(task, min(batch_size, len(items) - start))
    if not kept:
        raise ValueError(f'None of the {len(items)} image(s) could be read ({", ".join(skipped[:3])}'
                         f'{", ..." if len(skipped) > 3 else ""}); see the warnings above for why.')
    result: Dict[str, Union[np.ndarray, List[Optional[str]]]] = {
        key: np.concatenate(parts) for key, parts in chunks.items()}
    result['paths'] = [os.fspath(items[i]) if isinstance(items[i], (str, os.PathLike)) else None for i in kept]
    result['indices'] = np.asarray(kept, dtype=np.int64)
    return result
