from .nonlinear_neck import NonLinearNeck
from .simclrv2_neck import SimCLRv2Neck

__all__ = ['NonLinearNeck', 'SimCLRv2Neck']
