from .contrastive_head import ContrastiveHead

__all__ = ['ContrastiveHead']
