from .bf16_optim_wrapper import BF16OptimWrapper, amp_optim_wrapper_cfg
from .lars import LARS
from .simclr_optim_constructor import SimCLROptimWrapperConstructor, excluded_parameter_ids

__all__ = ['BF16OptimWrapper', 'amp_optim_wrapper_cfg', 'LARS', 'SimCLROptimWrapperConstructor', 'excluded_parameter_ids']
