from .hooks import *  # noqa: F401,F403
from .model_wrapper import SimCLRDistributedDataParallel
from .optimizers import *  # noqa: F401,F403
from .runner import SimCLRRunner, lr_scale

__all__ = ['SimCLRDistributedDataParallel', 'SimCLRRunner', 'lr_scale']
