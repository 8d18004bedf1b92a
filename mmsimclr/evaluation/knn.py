"""Weighted k-nearest-neighbour classification of embeddings, and feature extraction for it.

The classifier is the one used to monitor self-supervised training (Wu et al., 2018, "Unsupervised Feature
Learning via Non-Parametric Instance Discrimination"; also solo-learn's and lightly's online kNN): features are
L2-normalised, a query ``q`` takes its ``k`` most cosine-similar training embeddings ``x_j`` (labels ``y_j``) and
class ``c`` scores

    score_c(q) = sum_{j in topk(q)} [y_j == c] * exp(cos(q, x_j) / T)

The prediction is ``argmax_c score_c``. With ``T -> 0`` this becomes 1-NN, with ``T -> inf`` a plain majority vote.

:func:`extract_features` embeds a dataset with a model in eval mode, without augmentation. Under distributed
training each rank embeds its own shard of the dataloader and the shards are gathered with ``mmengine.dist``
collectives, so every image is embedded exactly once.
"""
import time
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine import dist

__all__ = ['knn_predict', 'knn_top1', 'extract_features', 'embed_batch']


@torch.no_grad()
def knn_predict(train_feats: torch.Tensor,
                train_labels: torch.Tensor,
                query_feats: torch.Tensor,
                num_classes: Optional[int] = None,
                k: int = 200,
                temperature: float = 0.1,
                chunk_size: int = 1024) -> torch.Tensor:
    """Class scores of weighted cosine kNN.

    Args:
        train_feats: ``(N, D)`` memory-bank embeddings (normalised here).
        train_labels: ``(N,)`` integer labels in ``[0, C)``.
        query_feats: ``(M, D)`` embeddings to classify (normalised here).
        num_classes: ``C``; defaults to ``max(train_labels) + 1``.
        k: neighbours per query (clipped to ``N``).
        temperature: ``T`` in the vote weight ``exp(cos / T)``.
        chunk_size: queries per similarity block, bounding memory at ``chunk_size x N`` floats.

    Returns:
        ``(M, C)`` float scores ``score_c`` as in the module docstring; ``scores.argmax(1)`` is the prediction.
    """
    if train_feats.dim() != 2 or query_feats.dim() != 2 or train_feats.shape[1] != query_feats.shape[1]:
        raise ValueError(f'knn_predict needs (N, D) train and (M, D) query features with the same D, got '
                         f'{tuple(train_feats.shape)} and {tuple(query_feats.shape)}')
    if train_labels.shape != (train_feats.shape[0], ):
        raise ValueError(f'train_labels must have shape ({train_feats.shape[0]},), got {tuple(train_labels.shape)}')
    if train_feats.shape[0] == 0:
        raise ValueError('knn_predict: the memory bank (train_feats) is empty')
    train_labels = train_labels.long()
    num_classes = int(train_labels.max()) + 1 if num_classes is None else num_classes
    k = min(k, train_feats.shape[0])
    bank = F.normalize(train_feats.float(), dim=1)
    out = []
    for start in range(0, query_feats.shape[0], chunk_size):
        q = F.normalize(query_feats[start:start + chunk_size].float(), dim=1)
        sim, idx = (q @ bank.t()).topk(k, dim=1)  # (m, k)
        weights = (sim / temperature).exp()
        scores = torch.zeros(q.shape[0], num_classes, dtype=weights.dtype, device=weights.device)
        scores.scatter_add_(1, train_labels[idx], weights)
        out.append(scores)
    if not out:
        return torch.zeros(0, num_classes)
    return torch.cat(out)


def knn_top1(train_feats: torch.Tensor,
             train_labels: torch.Tensor,
             test_feats: torch.Tensor,
             test_labels: torch.Tensor,
             num_classes: Optional[int] = None,
             k: int = 200,
             temperature: float = 0.1) -> float:
    """Top-1 accuracy in percent of :func:`knn_predict` on ``(test_feats (M, D), test_labels (M,))``."""
    if test_feats.shape[0] == 0:
        raise ValueError('knn_top1: no test features')
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    pred = knn_predict(train_feats, train_labels, test_feats, num_classes, k, temperature).argmax(1)
    return float((pred == test_labels.long()).float().mean() * 100)


def _unwrap(model):
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


@torch.no_grad()
def embed_batch(model, data: dict, feature: str = 'feat') -> torch.Tensor:
    """Embed one dataloader batch (``default_collate`` output of a pipeline ending in ``PackInputs``).

    ``model`` is a SimCLR model (``feature`` picks ``'feat'``, the pooled backbone output ``h``, or ``'proj'``,
    the projection ``z``) or any mmpretrain model with ``extract_feat`` (an ``ImageClassifier`` from a linear or
    supervised config: its neck output, pooled if 4-D). Returns ``(B, D)``.
    """
    model = _unwrap(model)
    inputs = model.data_preprocessor(data, False)['inputs']
    if isinstance(inputs, (list, tuple)):
        inputs = inputs[0]
    if hasattr(model, 'embed'):
        out = model.embed(inputs)
        if feature not in out:
            raise KeyError(f'embed_batch: feature {feature!r} not produced by the model (it has {list(out)})')
        return out[feature]
    feats = model.extract_feat(inputs)
    last = feats[-1] if isinstance(feats, (list, tuple)) else feats
    return last.mean(dim=(2, 3)) if last.dim() == 4 else last.flatten(1)


def _all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate the rows of ``x`` from every rank (ranks may hold different numbers of rows)."""
    if dist.get_world_size() == 1:
        return x
    n = torch.tensor([x.shape[0]], dtype=torch.long)
    sizes = [int(s) for s in dist.all_gather(n)]
    pad = max(sizes) - x.shape[0]
    if pad:
        x = torch.cat([x, x.new_zeros((pad, ) + tuple(x.shape[1:]))])
    parts = dist.all_gather(x)
    return torch.cat([p[:s].cpu() for p, s in zip(parts, sizes)])


@torch.no_grad()
def extract_features(model,
                     dataloader,
                     feature: str = 'feat',
                     progress: bool = True,
                     logger=None,
                     desc: str = 'features') -> Tuple[torch.Tensor, torch.Tensor]:
    """Embed every image of ``dataloader.dataset`` once, across all ranks.

    The model is put in eval mode (batch norm uses its running statistics) and restored afterwards. Each rank
    embeds the batches its sampler gives it; features, labels and ``sample_idx`` are gathered from all ranks and
    placed in dataset order (padding duplicates added by the sampler overwrite identical rows).

    Returns:
        ``feats (len(dataset), D)`` float32 on the CPU and ``labels (len(dataset),)`` int64 (-1 where a sample
        has no ``gt_label``).
    """
    model_ = _unwrap(model)
    was_training = model_.training
    model_.eval()
    rank = dist.get_rank()
    bar = None
    if progress and rank == 0:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(dataloader))
    start = time.time()
    feats, labels, indices = [], [], []
    try:
        for data in dataloader:
            feats.append(embed_batch(model_, data, feature).float().cpu())
            samples = data['data_samples']
            labels.append(torch.tensor([int(s.gt_label[0]) if 'gt_label' in s else -1 for s in samples]))
            indices.append(torch.tensor([int(s.sample_idx) for s in samples]))
            if bar is not None:
                bar.update()
    finally:
        model_.train(was_training)
    if bar is not None:
        print(flush=True)
    local_feats = torch.cat(feats) if feats else torch.zeros(0, 1)
    local_labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
    local_indices = torch.cat(indices) if indices else torch.zeros(0, dtype=torch.long)
    if dist.get_world_size() > 1:
        dim = torch.tensor([local_feats.shape[1] if feats else 0])
        dim = int(max(int(d) for d in dist.all_gather(dim)))
        if not feats:
            local_feats = torch.zeros(0, dim)
    all_feats = _all_gather_rows(local_feats)
    meta = _all_gather_rows(torch.stack([local_indices, local_labels], dim=1))
    n = len(dataloader.dataset)
    out_feats = torch.zeros(n, all_feats.shape[1])
    out_labels = torch.full((n, ), -1, dtype=torch.long)
    out_feats[meta[:, 0]] = all_feats
    out_labels[meta[:, 0]] = meta[:, 1]
    seen = torch.zeros(n, dtype=torch.bool)
    seen[meta[:, 0]] = True
    if not bool(seen.all()):
        raise RuntimeError(f'extract_features: {int((~seen).sum())} of {n} samples were not embedded; the '
                           'dataloader sampler must cover the whole dataset (use DefaultSampler with shuffle=False)')
    if logger is not None:
        logger.info(f'embedded {n} images ({desc}) in {time.time() - start:.1f} s')
    return out_feats, out_labels

