from .nonlinear_neck import NonLinearNeck

__all__ = ['NonLinearNeck']
