"""Evaluation of embeddings: the eval pipelines, feature extraction, kNN, the linear-transfer protocol, and the
labelled datasets they read (mmpretrain's ``Accuracy`` and friends are reachable through the parent registry)."""
from .embedding import build_eval_loader, build_subset, derive_dataset_cfg, eval_dataset_cfgs
from .features import embed, embed_batch, extract_dataset_features
from .knn import knn_predict, knn_top1
from .pipelines import DEFAULT_EVAL_PIPELINE, eval_pipeline_from, eval_pipeline_of, resize_crop_pipeline

__all__ = ['DEFAULT_EVAL_PIPELINE', 'build_eval_loader', 'build_subset', 'derive_dataset_cfg', 'embed',
           'embed_batch', 'eval_dataset_cfgs', 'eval_pipeline_from', 'eval_pipeline_of', 'extract_dataset_features',
           'knn_predict', 'knn_top1', 'resize_crop_pipeline']
