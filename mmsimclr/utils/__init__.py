from .checkpoint import UnsafeCheckpointError, register_checkpoint_loader, safe_torch_load
from .dist import init_cpu_dist_if_needed
from .setup_env import register_all_modules
from .stored_config import config_from_text, model_config_from_text

__all__ = ['UnsafeCheckpointError', 'config_from_text', 'init_cpu_dist_if_needed', 'model_config_from_text',
           'register_all_modules', 'register_checkpoint_loader', 'safe_torch_load']
