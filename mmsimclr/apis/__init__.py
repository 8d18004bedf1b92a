"""User-facing API: the model zoo, building models with verified weights, inference, feature extraction and
linear transfer. It sits on top of the package: nothing below (models, datasets, evaluation, engine, utils)
imports it."""
from .download import ChecksumError, DownloadError, cache_dir, fetch_checkpoint
from .inference import extract_features, inference_model
from .model import config_from_checkpoint, get_model
from .model_zoo import ModelInfo, get_model_info, list_models, register_model, unregister_model
from .transfer import linear_transfer

__all__ = ['ChecksumError', 'DownloadError', 'ModelInfo', 'cache_dir', 'config_from_checkpoint',
           'extract_features', 'fetch_checkpoint', 'get_model', 'get_model_info', 'inference_model',
           'linear_transfer', 'list_models', 'register_model', 'unregister_model']
