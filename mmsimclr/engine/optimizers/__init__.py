from .lars import LARS
from .simclr_optim_constructor import SimCLROptimWrapperConstructor, excluded_parameter_ids

__all__ = ['LARS', 'SimCLROptimWrapperConstructor', 'excluded_parameter_ids']
