from .hooks import *  # noqa: F401,F403
from .model_wrapper import SimCLRDistributedDataParallel
from .optimizers import *  # noqa: F401,F403

__all__ = ['SimCLRDistributedDataParallel']
