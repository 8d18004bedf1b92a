from .checkpoint import UnsafeCheckpointError, register_checkpoint_loader, safe_torch_load
from .dist import init_cpu_dist_if_needed
from .setup_env import register_all_modules

__all__ = ['UnsafeCheckpointError', 'register_checkpoint_loader', 'safe_torch_load', 'init_cpu_dist_if_needed',
           'register_all_modules']
