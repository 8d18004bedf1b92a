"""Online kNN monitor: validation for self-supervised pretraining.

mmpretrain's self-supervised models cannot run a validation loop (no labels are used in training and ``predict``
is not implemented), so there is no signal during pretraining except the loss. This hook embeds a labelled subset
of the training images and the test set with the backbone (no augmentation, eval-mode batch norm) every
``interval`` epochs and logs the weighted kNN top-1 accuracy (cosine similarity, ``k`` neighbours, vote weights
``exp(sim / T)``; see :mod:`mmsimclr.evaluation.knn`).

The accuracy goes to the logger, to the message hub (``knn/top1``) and to the visualizer
(``visualizer.add_scalars``: the ``vis_data/scalars.json`` of ``LocalVisBackend``, TensorBoard...). Under DDP each
rank embeds its shard of both sets once; the shards are all-gathered, each rank classifies a disjoint part of the
test set and the correct counts are summed with ``all_reduce``.

**A monitor never ends a run.** When the data cannot be classified -- no labels (an
:class:`~mmsimclr.datasets.UnlabeledImageFolder`, a flat folder), no test split to find -- the hook says so in one
log line before training and stays off; any other error while evaluating is logged with its reason and turns the
hook off. Training and checkpointing go on (:class:`LabelFreeMonitorHook` measures progress without labels).
"""
import time
from typing import List, Optional

import torch
from mmengine import dist
from mmengine.hooks import Hook

from mmsimclr.evaluation.embedding import build_eval_loader, build_subset, derive_dataset_cfg
from mmsimclr.evaluation.knn import extract_features, knn_predict
from mmsimclr.registry import HOOKS


class _NotClassifiable(ValueError):
    """The data the hook would use has no labels or no test split: the hook is skipped, not an error."""


def _has_labels(dataset) -> bool:
    """Whether the dataset's samples carry a ``gt_label`` (read from its annotations, no image is decoded)."""
    if len(dataset) == 0:
        return False
    info = dataset.get_data_info(0) if hasattr(dataset, 'get_data_info') else {}
    return info.get('gt_label') is not None

@torch.no_grad()
def distributed_knn_top1(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                         test_labels: torch.Tensor, num_classes: Optional[int], k: int,
                         temperature: float) -> float:
    """kNN top-1 (%) where rank ``r`` classifies test rows ``r, r + W, ...`` and counts are summed over ranks."""
    rank, world = dist.get_rank(), dist.get_world_size()
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    mine = slice(rank, None, world)
    pred = knn_predict(train_feats, train_labels, test_feats[mine], num_classes, k, temperature).argmax(1)
    counts = torch.tensor([(pred == test_labels[mine]).sum().item(), pred.shape[0]], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(counts)
    return float(counts[0] / counts[1] * 100)


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Report weighted kNN top-1 of the backbone embedding every ``interval`` epochs.

    Args:
        interval (int): evaluate after every ``interval`` training epochs and after the last one (also when a
            hook such as :class:`TimeBudgetHook` ends training before the planned last epoch).
        k (int): neighbours. Defaults to 200.
        temperature (float): ``T`` in the vote weights ``exp(cos / T)``. Defaults to 0.1.
        train_dataset (dict, optional): labelled memory-bank dataset. Defaults to the training dataloader's
            dataset with the evaluation pipeline (see :func:`derive_dataset_cfg`).
        test_dataset (dict, optional): query dataset. Defaults to the ``test_split`` of the training dataset.
        pipeline (list, optional): evaluation pipeline for derived datasets. Defaults to the config's
            ``test_pipeline`` (the one ``inference_model`` and the analysis tools use), else the training
            pipeline's loading steps + ``PackInputs``.
        test_split (str): split name for the derived test set. Defaults to ``'test'``.
        num_train (int, optional): random memory-bank subset size (fixed by ``seed``). Defaults to all.
        num_test (int, optional): random test subset size. Defaults to all.
        feature (str): ``'feat'`` (pooled backbone output, the representation SimCLR evaluates) or ``'proj'``.
        batch_size (int): embedding batch size per rank. Defaults to 256.
        num_workers (int): dataloader workers. Defaults to 2.
        eval_before_train (bool): also evaluate the initial weights (logged as epoch 0). Defaults to False.
        progress (bool): show a progress bar while embedding (rank 0). Defaults to True.
        seed (int): seed of the subsets. Defaults to 0.
    """

    priority = 'LOW'

    def __init__(self,
                 interval: int = 1,
                 k: int = 200,
                 temperature: float = 0.1,
                 train_dataset: Optional[dict] = None,
                 test_dataset: Optional[dict] = None,
                 pipeline: Optional[List[dict]] = None,
                 test_split: str = 'test',
                 num_train: Optional[int] = None,
                 num_test: Optional[int] = None,
                 feature: str = 'feat',
                 batch_size: int = 256,
                 num_workers: int = 2,
                 eval_before_train: bool = False,
                 progress: bool = True,
                 seed: int = 0):
        if interval < 1 or k < 1 or temperature <= 0:
            raise ValueError(f'KNNMonitorHook needs interval >= 1, k >= 1, temperature > 0; got {interval}, {k}, '
                             f'{temperature}')
        self.interval, self.k, self.temperature = interval, k, temperature
        self.train_dataset_cfg, self.test_dataset_cfg = train_dataset, test_dataset
        self.pipeline, self.test_split = pipeline, test_split
        self.num_train, self.num_test = num_train, num_test
        self.feature, self.batch_size, self.num_workers = feature, batch_size, num_workers
        self.eval_before_train, self.progress, self.seed = eval_before_train, progress, seed
        self._loaders = None
        self._evaluated_epoch: Optional[int] = None  # epochs completed at the last evaluation
        self.last_top1: Optional[float] = None
        self._off_reason: Optional[str] = None  # set when the hook is skipped or turned off

    def _build_loaders(self, runner):
        if self._loaders is not None:
            return self._loaders
        train_cfg = self.train_dataset_cfg
        test_cfg = self.test_dataset_cfg
        if train_cfg is None or test_cfg is None:
            loader_cfg = runner.cfg.get('train_dataloader')
            if loader_cfg is None or 'dataset' not in loader_cfg:
                raise ValueError('KNNMonitorHook: no train_dataloader.dataset in the config to derive the kNN '
                                 'datasets from; pass train_dataset=... and test_dataset=...')
            pipeline = self.pipeline if self.pipeline is not None else runner.cfg.get('test_pipeline')
            if train_cfg is None:
                train_cfg = derive_dataset_cfg(loader_cfg['dataset'], 'train', pipeline)
            if test_cfg is None:
                try:
                    test_cfg = derive_dataset_cfg(loader_cfg['dataset'], self.test_split, pipeline)
                except ValueError as e:
                    raise _NotClassifiable(f'the training data has no {self.test_split!r} split to classify') from e
        train_set = build_subset(train_cfg, self.num_train, self.seed)
        test_set = build_subset(test_cfg, self.num_test, self.seed + 1)
        for name, dataset in (('memory-bank', train_set), ('query', test_set)):
            if not _has_labels(dataset):
                raise _NotClassifiable(f'the {name} images have no labels ({type(dataset).__name__})')
        self._loaders = (build_eval_loader(train_set, self.batch_size, self.num_workers),
                         build_eval_loader(test_set, self.batch_size, self.num_workers))
        runner.logger.info(f'KNNMonitorHook: memory bank {len(train_set)} images, queries {len(test_set)} images, '
                           f'k={self.k}, T={self.temperature}, every {self.interval} epoch(s)')
        return self._loaders

    def evaluate(self, runner, epoch: int) -> float:
        """Embed both sets, classify, log ``knn/top1`` for ``epoch``; returns the accuracy in percent."""
        train_loader, test_loader = self._build_loaders(runner)
        start = time.time()
        train_feats, train_labels = extract_features(runner.model, train_loader, self.feature, self.progress,
                                                     desc='kNN memory bank')
        test_feats, test_labels = extract_features(runner.model, test_loader, self.feature, self.progress,
                                                   desc='kNN queries')
        if (train_labels < 0).any() or (test_labels < 0).any():
            raise _NotClassifiable('the images have no labels (gt_label)')
        classes = getattr(train_loader.dataset, 'CLASSES', None) or \
            train_loader.dataset.metainfo.get('classes')
        top1 = distributed_knn_top1(train_feats, train_labels, test_feats, test_labels,
                                    len(classes) if classes else None, self.k, self.temperature)
        seconds = time.time() - start
        self._evaluated_epoch = epoch
        self.last_top1 = top1
        runner.message_hub.update_scalar('knn/top1', top1)
        runner.visualizer.add_scalars({'knn/top1': top1, 'knn/epoch': epoch, 'knn/time_s': seconds},
                                      step=runner.iter)
        runner.logger.info(f'Epoch(knn) [{epoch}]  knn/top1: {top1:.2f}  (k={self.k}, T={self.temperature}, '
                           f'{len(train_feats)} bank / {len(test_feats)} queries, {seconds:.1f} s)')
        return top1

    def _safely(self, runner, epoch: Optional[int]) -> None:
        """:meth:`evaluate` (``epoch`` None: only build the loaders) unless the hook is off; a failure turns it off
        with one log line instead of ending the run."""
        if self._off_reason is not None:
            return
        try:
            if epoch is None:
                self._build_loaders(runner)
            else:
                self.evaluate(runner, epoch)
        except _NotClassifiable as e:
            self._off_reason = str(e)
            runner.logger.info(f'KNNMonitorHook: skipped for this run: {e}. kNN accuracy needs labelled data with '
                               'a test split (LabelFreeMonitorHook measures progress without labels).')
        except Exception as e:  # a monitor must never end a run
            self._off_reason = f'{type(e).__name__}: {e}'
            runner.logger.warning(f'KNNMonitorHook: turned off for the rest of this run: {self._off_reason}')

    def before_train(self, runner) -> None:
        self._evaluated_epoch = None
        self._safely(runner, None)  # find out now (one log line) whether the data can be classified at all
        if self.eval_before_train and runner.epoch == 0:
            self._safely(runner, 0)

    def after_train_epoch(self, runner) -> None:
        if self.every_n_epochs(runner, self.interval) or self.is_last_train_epoch(runner):
            self._safely(runner, runner.epoch + 1)  # epochs completed (runner.epoch is 0-based here)

    def after_train(self, runner) -> None:
        # training stopped before its planned last epoch (TimeBudgetHook, early stopping): evaluate the final model
        if runner.epoch > 0 and self._evaluated_epoch != runner.epoch:
            self._safely(runner, runner.epoch)  # runner.epoch = epochs completed once the loop has ended
