"""Weighted k-nearest-neighbour classification of embeddings.

The classifier is the one used to monitor self-supervised training (Wu et al., 2018, "Unsupervised Feature
Learning via Non-Parametric Instance Discrimination"; also solo-learn's and lightly's online kNN): features are
L2-normalised, a query ``q`` takes its ``k`` most cosine-similar training embeddings ``x_j`` (labels ``y_j``) and
class ``c`` scores

    score_c(q) = sum_{j in topk(q)} [y_j == c] * exp(cos(q, x_j) / T)

The prediction is ``argmax_c score_c``. With ``T -> 0`` this becomes 1-NN, with ``T -> inf`` a plain majority vote.

The embeddings come from :func:`mmsimclr.evaluation.features.extract_dataset_features` (eval mode, no
augmentation, each image once across ranks).
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .features import extract_dataset_features

__all__ = ['knn_predict', 'knn_top1']


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
    """Top-1 accuracy in percent of :func:`knn_predict` on ``(test_feats (M, D), test_labels (M,))``.

    Args:
        train_feats (Tensor): ``(N, D)`` memory-bank embeddings (L2-normalised inside :func:`knn_predict`).
        train_labels (Tensor): ``(N,)`` integer labels in ``[0, C)`` of ``train_feats``.
        test_feats (Tensor): ``(M, D)`` embeddings to classify, on the device of ``train_feats``; ``M >= 1``.
        test_labels (Tensor): ``(M,)`` integer true labels of ``test_feats``, on the same device.
        num_classes (int, optional): ``C``. Defaults to None: ``max(train_labels, test_labels) + 1``.
        k (int): neighbours per query, clipped to ``N``. Defaults to 200 (Wu et al., 2018).
        temperature (float): ``T`` in the vote weight ``exp(cos / T)``. Defaults to 0.1.

    Returns:
        float: the percentage (0-100) of test rows whose highest-scoring class is their label.

    Raises:
        ValueError: ``test_feats`` has no rows, or the shapes do not fit (see :func:`knn_predict`).
    """
    if test_feats.shape[0] == 0:
        raise ValueError('knn_top1: no test features')
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    pred = knn_predict(train_feats, train_labels, test_feats, num_classes, k, temperature).argmax(1)
    return float((pred == test_labels.long()).float().mean() * 100)


#: The name :class:`~mmsimclr.engine.hooks.KNNMonitorHook` imports: the dataset extractor of
#: :mod:`mmsimclr.evaluation.features` (kept until the hook imports ``extract_dataset_features`` itself).
extract_features = extract_dataset_features
