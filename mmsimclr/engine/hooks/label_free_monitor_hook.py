"""Progress without labels: RankMe, alignment, uniformity and the contrastive accuracy of a fixed held-out sample.

A falling loss does not show that the features are good: the projections can collapse onto a few directions while
the loss still falls. This hook measures the model on the same ``num_images`` images every ``interval`` epochs and
after the last one (and before training with ``eval_before_train``), in eval mode (batch norm's running
statistics), with :mod:`mmsimclr.evaluation.label_free`:

* ``labelfree/rankme`` -- RankMe of the pooled backbone features ``h`` of the un-augmented images (the
  config's ``test_pipeline``), between 1 and ``min(n, D)`` (logged as ``labelfree/rankme_max``);
* ``labelfree/alignment``, ``labelfree/uniformity`` -- of the normalised projections ``z`` of two augmented views
  (the training pipeline's; the same views at every evaluation: each image's augmentation is seeded by
  ``seed`` and its index, and device-side augmentation by ``seed`` and the batch index);
* ``labelfree/contrast_acc`` -- % of the ``2n`` views whose most similar other view (of ``2n - 1``) is its pair.

**Which images.** With :class:`~mmsimclr.datasets.UnlabeledImageFolder` its held-out sample (``holdout=N`` images
the training split leaves out); with a dataset that has a test split (CIFAR-10 and ImageNet image folders,
mmpretrain's datasets) a random ``num_images`` of it; otherwise a random ``num_images`` of the training images
(then not held out: the log says so).

**Collapse warning** (a ``WARNING`` in the log, from the first epoch on; the rule):

* RankMe below ``rank_floor`` x ``min(n, D)`` (default 1%, at least 2): nearly all images map to a handful of
  directions (complete collapse);
* RankMe below half of the highest RankMe of this run: dimensional collapse under way;
* uniformity above ``uniformity_ceiling`` (default -1.0; 0 = every projection identical, about -4 when spread).

The values go to the logger, the message hub and the visualizer (``vis_data/scalars.json``), and with ``plot``
(default) ``<work_dir>/label_free_metrics.png`` is redrawn: the training loss per epoch, the four measures and,
when a :class:`KNNMonitorHook` runs too, its kNN accuracy. The history travels in the checkpoints, so a resumed
run draws the whole curve.

**A monitor never ends a run**: an error while measuring is logged with the reason and the hook turns itself off;
training and checkpointing go on.
"""
import itertools
import os.path as osp
import random
import time
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from torch.utils.data import Dataset

from mmsimclr.evaluation.embedding import (build_eval_loader, build_subset, derive_dataset_cfg,
                                           innermost_dataset_cfg)
from mmsimclr.evaluation.features import embed, extract_dataset_features, unwrap
from mmsimclr.evaluation.label_free import MEASURES, alignment, contrast_accuracy, rankme, uniformity
from mmsimclr.evaluation.pipelines import eval_pipeline_from
from mmsimclr.registry import HOOKS


class SeededViews(Dataset):
    """``dataset[i]`` with numpy's and Python's global random state seeded by ``(seed, i)`` for the call and
    restored after it: the same augmented views of image ``i`` at every evaluation, in any loader worker, while the
    training process's own random streams are left untouched."""

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        np_state, py_state = np.random.get_state(), random.getstate()
        np.random.seed((self.seed * 1_000_003 + index) % 2**32)
        random.seed(self.seed * 1_000_003 + index)
        try:
            return self.dataset[index]
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def monitor_dataset_cfg(train_dataset: dict) -> tuple:
    """``(dataset config without pipeline, description)`` of the images the hook measures (see the module
    docstring) for the training dataset config ``train_dataset``."""
    base = dict(innermost_dataset_cfg(train_dataset))
    if str(base.get('type', '')).split('.')[-1] == 'UnlabeledImageFolder':
        if base.get('holdout', 0) > 0:
            return dict(base, split='holdout'), 'the held-out sample of the folder'
        return dict(base, split='all'), 'images of the folder (not held out: the dataset has holdout=0)'
    try:
        return derive_dataset_cfg(train_dataset, 'test'), 'the test split'
    except ValueError:
        return (derive_dataset_cfg(train_dataset, 'train'),
                'training images (not held out: the dataset has no test split)')


@HOOKS.register_module()
class LabelFreeMonitorHook(Hook):
    """Log label-free measures of the embedding; see the module docstring.

    Args:
        interval (int): measure after every ``interval`` epochs and after the last one. Defaults to 10.
        num_images (int): images measured (fewer if the held-out sample is smaller). Defaults to 2000.
        eval_before_train (bool): also measure the initial weights (epoch 0). Defaults to True.
        batch_size (int): images per forward pass and rank. Defaults to 256.
        num_workers (int): loader workers. Defaults to 2.
        seed (int): picks the images (datasets without a held-out sample) and their augmentations. Defaults to 0.
        rank_floor (float): collapse warning below this fraction of the largest possible RankMe. Defaults to 0.01.
        uniformity_ceiling (float): collapse warning above this uniformity. Defaults to -1.0.
        plot (bool): redraw ``<work_dir>/label_free_metrics.png`` after each measurement. Defaults to True.
        progress (bool): progress bars while embedding. Defaults to False.
    """

    # between the kNN monitor (LOW = 70), whose accuracy the plot shows, and the checkpoint hook (VERY_LOW = 90),
    # so that a checkpoint carries the measurement of its own epoch
    priority = 75

    def __init__(self,
                 interval: int = 10,
                 num_images: int = 2000,
                 eval_before_train: bool = True,
                 batch_size: int = 256,
                 num_workers: int = 2,
                 seed: int = 0,
                 rank_floor: float = 0.01,
                 uniformity_ceiling: float = -1.0,
                 plot: bool = True,
                 progress: bool = False):
        if interval < 1 or num_images < 2:
            raise ValueError(f'LabelFreeMonitorHook needs interval >= 1 and num_images >= 2, got {interval} and '
                             f'{num_images}')
        self.interval, self.num_images, self.eval_before_train = interval, num_images, eval_before_train
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.rank_floor, self.uniformity_ceiling = rank_floor, uniformity_ceiling
        self.plot, self.progress = plot, progress
        self.history: List[dict] = []  # one row per measurement: epoch, the measures, loss, knn
        self._loaders = None
        self._disabled = False
        self._measured_epoch: Optional[int] = None

    # ------------------------------------------------------------------------------------------------ data
    def _build_loaders(self, runner):
        if self._loaders is not None:
            return self._loaders
        loader_cfg = runner.cfg.get('train_dataloader') or {}
        if 'dataset' not in loader_cfg:
            raise ValueError('no train_dataloader.dataset in the config to take the images from')
        source, where = monitor_dataset_cfg(loader_cfg['dataset'])
        views_pipeline = innermost_dataset_cfg(loader_cfg['dataset']).get('pipeline') or []
        clean_pipeline = runner.cfg.get('test_pipeline') or eval_pipeline_from(views_pipeline)
        clean = build_subset(dict(source, pipeline=clean_pipeline), self.num_images, self.seed)
        views = build_subset(dict(source, pipeline=views_pipeline), self.num_images, self.seed)
        if len(clean) < 2:
            raise ValueError(f'only {len(clean)} image(s) in {where}; at least 2 are needed')
        self._loaders = (build_eval_loader(clean, self.batch_size, self.num_workers),
                         build_eval_loader(SeededViews(views, self.seed), self.batch_size, self.num_workers))
        runner.logger.info(f'LabelFreeMonitorHook: {len(clean)} images from {where}, every {self.interval} '
                           f'epoch(s): RankMe, alignment, uniformity, contrast_acc')
        return self._loaders

    def _views_embedder(self):
        """Per batch: two views (from the loader, or made by the data preprocessor on the device with a seeded
        generator) -> ``(B, 2d)`` projections side by side."""
        batches = itertools.count()
        seed = self.seed

        def embed_views(model, data) -> torch.Tensor:
            devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed * 1_000_003 + next(batches))
                views = model.data_preprocessor(data, True)['inputs']
            if not isinstance(views, (list, tuple)) or len(views) < 2:
                raise ValueError('the training pipeline / data preprocessor gives one view per image; alignment and '
                                 'contrast_acc need two (MultiView(num_views=2) or a SimCLRDataPreprocessor)')
            out = [embed(model, v) for v in views[:2]]
            key = 'proj' if 'proj' in out[0] else 'feat'
            return torch.cat([out[0][key], out[1][key]], dim=1)

        return embed_views

    # ------------------------------------------------------------------------------------------------ measuring
    def measure(self, runner) -> Dict[str, float]:
        """The four measures (and ``rankme_max``) of the current model on the sample."""
        clean_loader, views_loader = self._build_loaders(runner)
        model = runner.model
        h, _ = extract_dataset_features(model, clean_loader, 'feat', self.progress, desc='label-free: images',
                                        missing='drop')
        z, _ = extract_dataset_features(model, views_loader, progress=self.progress, desc='label-free: views',
                                        embed_fn=self._views_embedder(), missing='drop')
        z_a, z_b = z.chunk(2, dim=1)
        return dict(rankme=rankme(h), rankme_max=float(min(h.shape)), alignment=alignment(z_a, z_b),
                    uniformity=uniformity(z_a, z_b), contrast_acc=contrast_accuracy(z_a, z_b))

    def _epoch_loss(self, runner) -> Optional[float]:
        try:
            buffer = runner.message_hub.get_scalar('train/loss')
        except KeyError:
            return None
        values = buffer.data[0]
        if not len(values):
            return None
        per_epoch = len(runner.train_dataloader) if hasattr(runner, 'train_dataloader') else len(values)
        return float(np.mean(values[-min(per_epoch, len(values)):]))

    def _knn(self, runner, epoch: int) -> Optional[float]:
        for hook in runner.hooks:
            if type(hook).__name__ == 'KNNMonitorHook' and getattr(hook, '_evaluated_epoch', None) == epoch:
                return getattr(hook, 'last_top1', None)
        return None

    def collapse_warnings(self, row: dict) -> List[str]:
        """The collapse rule of the module docstring applied to one measurement (``history`` holds the earlier
        ones); empty before training (epoch 0)."""
        if row['epoch'] < 1:
            return []
        out = []
        floor = max(2.0, self.rank_floor * row['rankme_max'])
        best = max([r['rankme'] for r in self.history if r['epoch'] >= 1 and r is not row] + [0.0])
        if row['rankme'] < floor:
            out.append(f'RankMe {row["rankme"]:.1f} < {floor:.1f} ({self.rank_floor:.0%} of its maximum '
                       f'{row["rankme_max"]:.0f}): the features have collapsed onto a few directions')
        elif row['rankme'] < 0.5 * best:
            out.append(f'RankMe {row["rankme"]:.1f} is below half of its best in this run ({best:.1f}): '
                       'dimensional collapse under way')
        if row['uniformity'] > self.uniformity_ceiling:
            out.append(f'uniformity {row["uniformity"]:.2f} > {self.uniformity_ceiling}: the projections are '
                       'bunched together (0 = all identical)')
        return out

    def evaluate(self, runner, epoch: int) -> Optional[dict]:
        """Measure, log, warn and plot for ``epoch`` (epochs completed). Never raises: an error turns the hook
        off with a log line that names it."""
        if self._disabled:
            return None
        start = time.time()
        try:
            values = self.measure(runner)
        except Exception as e:  # a monitor must never end a run
            self._disabled = True
            runner.logger.warning(f'LabelFreeMonitorHook: turned off for the rest of this run: '
                                  f'{type(e).__name__}: {e}')
            return None
        self._measured_epoch = epoch
        row = dict(epoch=epoch, **values, loss=self._epoch_loss(runner) if epoch > 0 else None,
                   knn=self._knn(runner, epoch), seconds=time.time() - start)
        self.history = [r for r in self.history if r['epoch'] != epoch] + [row]
        scalars = {f'labelfree/{k}': values[k] for k in MEASURES + ('rankme_max', )}
        scalars['labelfree/epoch'] = epoch
        for key in MEASURES:
            runner.message_hub.update_scalar(f'labelfree/{key}', values[key])
        runner.visualizer.add_scalars(scalars, step=runner.iter)
        runner.logger.info(
            f'Epoch(label-free) [{epoch}]  rankme: {values["rankme"]:.1f} (of at most {values["rankme_max"]:.0f})  '
            f'alignment: {values["alignment"]:.4f}  uniformity: {values["uniformity"]:.4f}  '
            f'contrast_acc: {values["contrast_acc"]:.2f}  ({row["seconds"]:.1f} s)')
        for warning in self.collapse_warnings(row):
            runner.logger.warning(f'Possible collapse at epoch {epoch}: {warning}. Check the augmentations, the '
                                  'learning rate and the temperature.')
        if self.plot and get_rank() == 0:
            try:
                plot_label_free(self.history, osp.join(runner.work_dir, 'label_free_metrics.png'))
            except Exception as e:  # drawing is never worth a run
                runner.logger.warning(f'LabelFreeMonitorHook: could not draw the plot: {type(e).__name__}: {e}')
        return row

    # ------------------------------------------------------------------------------------------------ hook points
    def before_train(self, runner) -> None:
        self._measured_epoch = None
        if self.eval_before_train and runner.epoch == 0 and not any(r['epoch'] == 0 for r in self.history):
            self.evaluate(runner, 0)

    def after_train_epoch(self, runner) -> None:
        if self.every_n_epochs(runner, self.interval) or self.is_last_train_epoch(runner):
            self.evaluate(runner, runner.epoch + 1)

    def after_train(self, runner) -> None:
        if runner.epoch > 0 and self._measured_epoch != runner.epoch:  # stopped early (TimeBudgetHook...)
            self.evaluate(runner, runner.epoch)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['label_free_history'] = list(self.history)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        history = (checkpoint.get('meta') or {}).get('label_free_history')
        if isinstance(history, list):
            self.history = list(history)


def plot_label_free(history: List[dict], out: str) -> str:
    """Draw the loss, the four measures and (when measured) kNN top-1 against the epoch; writes ``out`` (PNG)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = sorted(history, key=lambda r: r['epoch'])
    panels = [('loss', 'training loss (epoch mean)'), ('rankme', 'RankMe (effective rank of h)'),
              ('alignment', 'alignment (lower: views agree)'), ('uniformity', 'uniformity (lower: spread)'),
              ('contrast_acc', 'contrast_acc (%)')]
    if any(r.get('knn') is not None for r in rows):
        panels.append(('knn', 'kNN top-1 (%, uses labels)'))
    cols = 3
    rows_ = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows_, cols, figsize=(3.4 * cols, 2.8 * rows_), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis('off')
    for ax, (key, title) in zip(axes.flat, panels):
        points = [(r['epoch'], r[key]) for r in rows if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker='o', markersize=3)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel('epoch', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
