"""Linear transfer evaluation of a frozen backbone on an image-folder dataset (SimCLR, Table 8, linear rows).

The model comes from :func:`mmsimclr.apis.get_model` (a zoo name, a config with weights, or a checkpoint alone);
:func:`linear_transfer` prepares images with the paper's preprocessing (short side resized to ``size`` with bicubic
resampling, centre crop
``size x size``, no augmentation: :func:`mmsimclr.evaluation.pipelines.resize_crop_pipeline`), extracts the pooled
backbone features ``h`` (N, D) of both splits with :func:`mmsimclr.apis.extract_features` and runs
:func:`mmsimclr.evaluation.logistic_regression.evaluate_transfer` on them.
"""
import contextlib
import copy
import time
from typing import Sequence

import torch

from mmsimclr.datasets.image_folder import scan_image_folder
from mmsimclr.evaluation.logistic_regression import PAPER_GRID, evaluate_transfer
from mmsimclr.evaluation.pipelines import resize_crop_pipeline
from .inference import extract_features


@contextlib.contextmanager
def using_pipeline(net: torch.nn.Module, pipeline: list):
    """Within the ``with`` block, ``net`` (from :func:`mmsimclr.apis.get_model`) preprocesses images with
    ``pipeline``; its own config comes back afterwards, also on an error.

    Args:
        net (torch.nn.Module): a model with a ``cfg`` attribute, as ``get_model`` returns it.
        pipeline (list): the test pipeline to use (mmengine transform configs).
    """
    original = net.cfg
    cfg = copy.deepcopy(original)
    cfg.test_dataloader = dict(dataset=dict(pipeline=pipeline))
    net.cfg = cfg
    try:
        yield net
    finally:
        net.cfg = original


def linear_transfer(net: torch.nn.Module, train_dir: str, test_dir: str, size: int = 224,
                    grid: Sequence[float] = PAPER_GRID, val_fraction: float = 0.2, seed: int = 0,
                    feature: str = 'feat', batch_size: int = 64, progress: bool = True) -> dict:
    """Fit the logistic regression on the frozen features of ``train_dir`` and evaluate it on ``test_dir``.

    Both folders are ``<class>/<image>`` folders with the same class names: the labels are the indices of the
    sorted class folders of ``train_dir``; ``test_dir`` may lack classes, but not have others.

    Args:
        net (torch.nn.Module): a model from :func:`mmsimclr.apis.get_model` (it needs its ``cfg``), run on the
            device it is on. During the call it preprocesses with the resize-and-crop of ``size``; its ``cfg``
            is the same object afterwards.
        train_dir (str): the training images: the regularisation is chosen on a held-out part of them, then the
            classifier is refit on all of them.
        test_dir (str): the images the reported ``top1`` / ``top5`` are measured on.
        size (int): side in pixels of the network input: the short side is resized to ``size`` and the centre
            ``size x size`` crop is kept. Defaults to 224, the paper's input size.
        grid (Sequence[float]): candidate L2 strengths ``lambda``. Defaults to the paper's 45 log-spaced values in
            ``[1e-6, 1e5]`` (``PAPER_GRID``); a single value is used as it is, without a held-out selection.
        val_fraction (float): fraction, in ``(0, 1)``, of each class of ``train_dir`` held out to choose
            ``lambda``. Defaults to 0.2.
        seed (int): seed of the random held-out split, so that a rerun chooses the same ``lambda``. Defaults to 0.
        feature (str): which output of :func:`mmsimclr.apis.extract_features` to classify: ``'feat'`` (the
            pooled backbone features ``h``, what the paper evaluates; the default) or ``'proj'`` (SimCLR's
            projection ``z``).
        batch_size (int): images per forward pass of the feature extraction. Defaults to 64.
        progress (bool): show the feature extraction's progress bar on stderr. Defaults to True.

    Returns:
        dict: ``top1``, ``top5`` (%), ``l2`` (the chosen lambda), ``val_top1`` (``{lambda: %}`` on the held-out
        part of train), ``num_train``, ``num_test``, ``num_classes``, ``feature_dim`` and ``seconds``.

    Raises:
        ValueError: the model has no output called ``feature``.
        BadImageError: an image cannot be read (the labels are matched to the feature rows by position, so no
            image may be skipped).
    """
    start = time.time()
    train_paths, train_labels, classes = scan_image_folder(train_dir)
    test_paths, test_labels, _ = scan_image_folder(test_dir, classes)
    feats = []
    # the paper's preprocessing for transfer via a linear classifier (Appendix B.8.1, after Kornblith et al., 2019):
    # the shorter side resized to 224 with bicubic resampling, then the centre 224 x 224 crop
    with using_pipeline(net, resize_crop_pipeline(size, resize=size, interpolation='bicubic')):
        for paths in (train_paths, test_paths):
            # labels are matched to rows by position: an unreadable file stops the evaluation, naming the file
            out = extract_features(net, paths, batch_size=batch_size, progress=progress, on_bad_image='raise')
            if feature not in out:
                names = sorted(k for k in out if k not in ('paths', 'indices'))
                raise ValueError(f'The model gives features {names}, not "{feature}"; pick one of those')
            feats.append(torch.from_numpy(out[feature]))
    result = evaluate_transfer(feats[0], torch.tensor(train_labels), feats[1], torch.tensor(test_labels), grid,
                               val_fraction, seed, num_classes=len(classes))
    return dict(result.as_dict(), num_train=len(train_paths), num_test=len(test_paths), num_classes=len(classes),
                feature_dim=int(feats[0].shape[1]), seconds=round(time.time() - start, 2))
