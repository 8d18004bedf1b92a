"""Optimizer constructor that excludes normalisation parameters and biases from weight decay and LARS adaptation.

The paper (Appendix B.1 / the reference implementation) trains with LARS and excludes batch-norm parameters and
biases from both the weight decay and the trust-ratio scaling. mmpretrain's configs express that with name
substrings (``'bn'``, ``'bias'``, ``'downsample.1'``), which silently misses norm layers named otherwise (``gn``,
``ln``, ``norm``, a backbone with different module names). Here the choice is made by what a parameter *is*: every
parameter of a normalisation module (``_BatchNorm``, ``GroupNorm``, ``LayerNorm``, ``_InstanceNorm``) and every
parameter called ``bias``.

Parameter groups with identical settings are merged afterwards, so the optimizer sees a handful of groups instead
of one per parameter (LARS and SGD step faster with fewer groups).
"""
from typing import List

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from mmsimclr.registry import OPTIM_WRAPPER_CONSTRUCTORS

NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)


def excluded_parameter_ids(model: nn.Module) -> set:
    """ids of the parameters that get no weight decay and no LARS adaptation (norm layers, biases)."""
    ids = set()
    for module in model.modules():
        is_norm = isinstance(module, NORM_TYPES)
        for name, param in module.named_parameters(recurse=False):
            if is_norm or name == 'bias':
                ids.add(id(param))
    return ids


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SimCLROptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` plus kind-based exclusions.

    ``paramwise_cfg`` keeps all of mmengine's options (``custom_keys``, ``lr_mult``...); in addition
    ``exclude_norm_and_bias`` (default True) sets ``weight_decay=0`` and ``lars_exclude=True`` for norm-layer
    parameters and biases.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.exclude_norm_and_bias = paramwise_cfg.pop('exclude_norm_and_bias', True)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def __call__(self, model: nn.Module):
        if not self.paramwise_cfg:
            # force per-parameter groups so that exclusions can be applied, then merge them again
            self.paramwise_cfg = dict(_force_groups=True)
        return super().__call__(model)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '', **kwargs) -> None:
        self.paramwise_cfg.pop('_force_groups', None)
        super().add_params(params, module, prefix=prefix, **kwargs)
        if prefix:  # only the outermost call post-processes
            return
        if self.exclude_norm_and_bias:
            excluded = excluded_parameter_ids(module)
            for group in params:
                if id(group['params'][0]) in excluded:
                    group['weight_decay'] = 0.0
                    group['lars_exclude'] = True
        merged = {}
        for group in params:
            key = tuple(sorted((k, v) for k, v in group.items() if k != 'params'))
            merged.setdefault(key, dict(group, params=[]))['params'].extend(group['params'])
        params[:] = list(merged.values())
