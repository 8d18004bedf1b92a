"""User-facing API: the model zoo, building models with verified weights, inference and feature extraction."""
from .download import ChecksumError, DownloadError, cache_dir, fetch_checkpoint
from .inference import extract_features, inference_model
from .model import get_model
from .model_zoo import ModelInfo, get_model_info, list_models, register_model, unregister_model

__all__ = ['ChecksumError', 'DownloadError', 'ModelInfo', 'cache_dir', 'extract_features', 'fetch_checkpoint',
           'get_model', 'get_model_info', 'inference_model', 'list_models', 'register_model', 'unregister_model']
