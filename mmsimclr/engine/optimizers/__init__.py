from .simclr_optim_constructor import SimCLROptimWrapperConstructor, excluded_parameter_ids

__all__ = ['SimCLROptimWrapperConstructor', 'excluded_parameter_ids']
