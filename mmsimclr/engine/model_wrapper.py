"""DDP wrapper that runs on CPU process groups too.

mmengine's runner passes ``device_ids=[LOCAL_RANK]`` to every ``DistributedDataParallel`` subclass; torch rejects
``device_ids`` for a module on the CPU. This wrapper drops them when the module has no CUDA parameters, so the very
same config trains with NCCL on GPUs and with gloo on a CPU-only machine (how CI tests distribution).

mmengine's runner calls the wrapper's ``train_step``, not the module's, so ``train_step`` also does what
mmsimclr's ``SimCLR.train_step`` adds: the module's ``check_optim_wrapper`` (SimCLR refuses gradient accumulation),
and, with the module's ``grad_cache`` set, its ``grad_cache_train_step`` given this wrapper, whose forward passes
build the gradients (every chunk but the last in ``no_sync()``: one all-reduce per step).
"""
from typing import Dict, Union

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS

from mmsimclr.registry import MODEL_WRAPPERS


# mmengine's runner looks wrappers up in its *root* registry (not through the default scope), so the class is
# registered there as well as in ours
@MMENGINE_MODEL_WRAPPERS.register_module()
@MODEL_WRAPPERS.register_module()
class SimCLRDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps a CPU module (gloo) and runs SimCLR's own ``train_step``.

    ``train_step`` first calls the module's ``check_optim_wrapper(optim_wrapper)`` when it has one; a module whose
    ``grad_cache`` is set is then trained by its ``grad_cache_train_step`` (given this wrapper as ``model``),
    any other by mmengine's ``train_step``.

    Args:
        module (torch.nn.Module): the model to wrap, already on its device. When none of its parameters is on a
            CUDA device, ``device_ids`` and ``output_device`` are dropped from ``kwargs`` (torch refuses them for a
            CPU module; mmengine's runner always passes ``device_ids``).
        detect_anomalous_params (bool): as mmengine's ``MMDistributedDataParallel``: debugging only, report the
            parameters that did not contribute to the loss (slow). Defaults to False.
        **kwargs: to torch's ``DistributedDataParallel`` (``device_ids``, ``broadcast_buffers``,
            ``find_unused_parameters``...), less the two above for a CPU module.
    """

    def __init__(self, module, detect_anomalous_params: bool = False, **kwargs):
        on_cuda = any(p.is_cuda for p in module.parameters())
        if not on_cuda:
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(module=module, detect_anomalous_params=detect_anomalous_params, **kwargs)

    def train_step(self, data: Union[dict, tuple, list], optim_wrapper) -> Dict[str, torch.Tensor]:
        check = getattr(self.module, 'check_optim_wrapper', None)
        if check is not None:
            check(optim_wrapper)
        if getattr(self.module, 'grad_cache', None) is not None:
            return self.module.grad_cache_train_step(data, optim_wrapper, model=self)
        return super().train_step(data, optim_wrapper)
