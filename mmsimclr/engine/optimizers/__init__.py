from .amp_optim_wrapper import AmpOptimWrapper
from .lars import LARS
from .simclr_optim_constructor import SimCLROptimWrapperConstructor, excluded_parameter_ids

__all__ = ['AmpOptimWrapper', 'LARS', 'SimCLROptimWrapperConstructor', 'excluded_parameter_ids']
