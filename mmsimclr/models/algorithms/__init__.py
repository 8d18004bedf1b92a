from .simclr import SimCLR
from .simclrv2_distiller import SimCLRv2Distiller

__all__ = ['SimCLR', 'SimCLRv2Distiller']
