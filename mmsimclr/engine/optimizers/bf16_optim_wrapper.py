"""``BF16OptimWrapper``: bfloat16 autocast without loss scaling, on CPUs and on GPUs with native bf16.

bfloat16 has float32's exponent range, so gradients do not underflow and no loss scaler is needed. mmengine's
``AmpOptimWrapper`` always creates a ``GradScaler`` (whose inf/NaN check forces a device->host sync every step) and
refuses to be built on a CPU; this wrapper is the plain ``OptimWrapper`` plus ``torch.autocast(dtype=bfloat16)``
on the model's device, so ``tools/train.py --amp`` runs the same way on a laptop and on an A100/H100. Parameters,
gradients and optimizer state stay float32.

Which mixed precision a device gets is decided by :func:`amp_optim_wrapper_cfg`:

- CPU, or a GPU with *native* bf16 (compute capability >= 8.0: A100, H100, RTX 30xx/40xx): ``BF16OptimWrapper``;
- older GPUs (V100, T4: bf16 only through slow emulation): mmengine's ``AmpOptimWrapper`` with float16 and a
  dynamic loss scaler.
"""
from contextlib import contextmanager
from typing import Optional

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from mmsimclr.registry import OPTIM_WRAPPERS


def _device_type(model: nn.Module) -> str:
    for tensor in model.parameters():
        return tensor.device.type
    return 'cpu'


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward and loss run under bfloat16 autocast on the model's device (no loss scaling).

    Only ``optim_context`` differs from ``OptimWrapper``: it also enters ``torch.autocast`` with
    ``dtype=torch.bfloat16`` on the device type of the model's first parameter (the CPU for a model without
    parameters). The optimizer step, the gradients and their clipping are ``OptimWrapper``'s, in float32.

    Args:
        optimizer (Optimizer): the optimizer that updates the parameters, as mmengine's ``OptimWrapper``.
        accumulative_counts (int): iterations whose gradients are accumulated before each update, as mmengine's.
            Defaults to 1.
        clip_grad (dict, optional): arguments of the gradient clipping by norm or by value, as mmengine's.
            Defaults to None: no clipping.
    """

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast(_device_type(model), dtype=torch.bfloat16):
            yield


def native_bf16(local_rank: Optional[int] = None) -> bool:
    """True when CUDA is usable and GPU ``local_rank`` computes bf16 natively (capability >= 8.0).

    Reads the device's capability only: unlike ``torch.cuda.is_bf16_supported()`` it creates no tensor (and so no
    CUDA context on GPU 0 in every rank before ``set_device``) and does not count slow emulation as support.
    """
    if not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(local_rank or 0)[0] >= 8


def amp_optim_wrapper_cfg(optim_wrapper: dict, local_rank: Optional[int] = None) -> dict:
    """The ``optim_wrapper`` config for ``--amp`` on this machine (see the module docstring); a new dict."""
    cfg = dict(optim_wrapper)
    for key in ('dtype', 'loss_scale'):
        cfg.pop(key, None)
    if not torch.cuda.is_available() or native_bf16(local_rank):
        cfg['type'] = 'BF16OptimWrapper'
    else:
        cfg.update(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
    return cfg
