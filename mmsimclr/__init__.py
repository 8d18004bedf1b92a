"""mmsimclr: SimCLR for OpenMMLab (mmengine + mmpretrain)."""
import warnings

from .version import __version__

# mmcv-lite lacks compiled ops; mmcv warns about that on every import although mmsimclr never needs them
warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')

from .utils.checkpoint import register_checkpoint_loader  # noqa: E402

# any use of mmsimclr makes mmengine's local checkpoint loading weights-only *and* able to read its own checkpoints
register_checkpoint_loader()

from .apis import (extract_features, get_model, inference_model, list_models,  # noqa: E402
                   register_model)
from .apis.download import register_url_checkpoint_loader  # noqa: E402

# ... and its http(s) checkpoint loading (init_cfg=Pretrained with a URL) cached, checked and weights-only too
register_url_checkpoint_loader()

__all__ = ['__version__', 'extract_features', 'get_model', 'inference_model', 'list_models', 'register_model']
