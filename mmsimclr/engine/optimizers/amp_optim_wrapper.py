"""``AmpOptimWrapper`` that also trains on CPU (bf16 autocast), registered in mmsimclr's scope.

mmengine's ``AmpOptimWrapper`` refuses to be built without a GPU/NPU/MLU/MUSA, so ``tools/train.py --amp`` or an
``AmpOptimWrapper`` config could not run on a CPU machine. With an accelerator this class *is* mmengine's (same
arguments, loss scaler, state dict). On CPU it autocasts forward and loss to ``bfloat16`` (the only low-precision
type CPUs run fast; its exponent range is float32's, so no loss scaling is needed: ``loss_scale`` is accepted and
ignored) while the parameters, gradients and optimizer state stay float32.
"""
from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available
from mmengine.optim import AmpOptimWrapper as MMEngineAmpOptimWrapper
from mmengine.optim import OptimWrapper

from mmsimclr.registry import OPTIM_WRAPPERS


def _accelerator_available() -> bool:
    return is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()


@OPTIM_WRAPPERS.register_module()
class AmpOptimWrapper(MMEngineAmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` on accelerators; bf16 autocast without loss scaling on CPU.

    Args:
        loss_scale: as mmengine's (ignored on CPU).
        dtype (str | torch.dtype, optional): autocast type; on CPU ``None`` or ``'bfloat16'`` (others raise).
        use_fsdp (bool): as mmengine's.
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self, loss_scale='dynamic', dtype: Union[str, torch.dtype, None] = None, use_fsdp: bool = False,
                 **kwargs):
        self.on_cpu = not _accelerator_available()
        if not self.on_cpu:
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, None)
        if dtype not in (None, torch.bfloat16):
            raise ValueError(f'AmpOptimWrapper on CPU supports dtype bfloat16 only, got {dtype}')
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.loss_scaler = None
        self.cast_dtype = torch.bfloat16

    def backward(self, loss: torch.Tensor, **kwargs):
        if not self.on_cpu:
            return super().backward(loss, **kwargs)
        return OptimWrapper.backward(self, loss, **kwargs)

    def step(self, **kwargs):
        if not self.on_cpu:
            return super().step(**kwargs)
        return OptimWrapper.step(self, **kwargs)

    def state_dict(self) -> dict:
        if not self.on_cpu:
            return super().state_dict()
        return OptimWrapper.state_dict(self)

    def load_state_dict(self, state_dict: dict):
        if not self.on_cpu:
            return super().load_state_dict(state_dict)
        state_dict = dict(state_dict)
        state_dict.pop('loss_scaler', None)  # a GPU checkpoint resumed on CPU
        if 'base_param_settings' in state_dict:
            self.base_param_settings = state_dict.pop('base_param_settings')
        self.optimizer.load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module):
        if not self.on_cpu:
            with super().optim_context(model):
                yield
            return
        with OptimWrapper.optim_context(self, model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
