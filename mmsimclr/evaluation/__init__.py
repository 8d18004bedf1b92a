"""Evaluation metrics (mmpretrain's ``Accuracy`` and friends are reachable through the parent registry)."""
from .knn import embed_batch, extract_features, knn_predict, knn_top1

__all__ = ['embed_batch', 'extract_features', 'knn_predict', 'knn_top1']
