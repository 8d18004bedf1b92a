from .gather import all_gather_with_grad, rank_and_world
from .global_batch_norm import GlobalBatchNorm

__all__ = ['all_gather_with_grad', 'rank_and_world', 'GlobalBatchNorm']
