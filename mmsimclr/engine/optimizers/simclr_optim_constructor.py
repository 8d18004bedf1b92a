"""mmengine's optimizer constructor with SimCLR's exclusions: no weight decay and no LARS adaptation for the
parameters of normalisation layers and for biases.

The paper (Appendix B.1 / the reference implementation) trains with LARS and excludes batch-norm parameters and
biases from both the weight decay and the trust-ratio scaling. mmpretrain's configs express that with name
substrings (``'bn'``, ``'bias'``, ``'downsample.1'``), which silently misses norm layers named otherwise (``gn``,
``ln``, ``norm``, a backbone with different module names). The choice here is by what a parameter *is*:

* weight decay: mmengine's own ``norm_decay_mult=0`` and ``bias_decay_mult=0`` (every parameter of a ``_BatchNorm``,
  ``_InstanceNorm``, ``GroupNorm`` or ``LayerNorm``, every parameter named ``bias``);
* LARS: the same parameters get ``lars_exclude=True`` -- the one thing mmengine's paramwise options cannot say.

mmengine's precedence holds for both: a parameter matched by ``custom_keys`` takes its settings from its key only
(give the key ``lars_exclude=True`` / ``decay_mult=0`` to exclude it). Parameter groups with identical settings are
merged afterwards, so the optimizer sees a handful of groups instead of one per parameter (LARS and SGD step faster
with fewer groups).
"""
import inspect
from typing import List

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIMIZERS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from mmsimclr.registry import OPTIM_WRAPPER_CONSTRUCTORS

# the kinds mmengine's ``norm_decay_mult`` applies to (DefaultOptimWrapperConstructor.add_params)
NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)


def excluded_parameter_ids(model: nn.Module, custom_keys=()) -> set:
    """ids of the parameters of norm layers and of the biases of ``model``, less those whose name
    (``'{module}.{param}'``, as mmengine matches it) contains one of ``custom_keys``."""
    ids = set()
    for prefix, module in model.named_modules():
        is_norm = isinstance(module, NORM_TYPES)
        for name, param in module.named_parameters(recurse=False):
            if (is_norm or name == 'bias') and not any(key in f'{prefix}.{name}' for key in custom_keys):
                ids.add(id(param))
    return ids


def _default_weight_decay(optimizer_type) -> float:
    """The ``weight_decay`` an optimizer class uses when its config gives none (0 when it has no such argument)."""
    if isinstance(optimizer_type, str):
        with OPTIMIZERS.switch_scope_and_registry(None) as registry:
            optimizer_type = registry.get(optimizer_type)
    if optimizer_type is None:  # unknown type: the build reports it
        return 0.0
    param = inspect.signature(optimizer_type).parameters.get('weight_decay')
    return 0.0 if param is None or param.default is inspect.Parameter.empty else float(param.default)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SimCLROptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` with norm layers and biases excluded from weight decay and LARS.

    ``paramwise_cfg`` keeps all of mmengine's options (``custom_keys``, ``bias_lr_mult``...); in addition
    ``exclude_norm_and_bias`` (default True) sets ``norm_decay_mult=0`` and ``bias_decay_mult=0`` (unless given) and
    ``lars_exclude=True`` for the same parameters. Without ``weight_decay`` in the optimizer config the exclusion is
    from the optimizer's default weight decay.

    Args:
        optim_wrapper_cfg (dict): as mmengine's ``DefaultOptimWrapperConstructor``: the ``optim_wrapper``
            config, with its ``type``, its ``optimizer`` config (``type``, ``lr``, ``weight_decay``...) and the
            wrapper's other arguments.
        paramwise_cfg (dict, optional): mmengine's parameter-wise options, plus ``exclude_norm_and_bias`` (bool,
            default True), taken out here before mmengine sees the rest: True excludes the parameters of
            ``_BatchNorm``, ``_InstanceNorm``, ``GroupNorm`` and ``LayerNorm`` layers and every ``bias`` from the
            weight decay (``norm_decay_mult=0`` and ``bias_decay_mult=0`` unless given) and from the LARS trust
            ratio (``lars_exclude=True``), except the parameters a ``custom_keys`` key matches, which take only
            that key's settings; False gives mmengine's behaviour, but with the parameter groups of identical
            settings merged. Defaults to None: no mmengine options, ``exclude_norm_and_bias=True`` (the paper's
            exclusions).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.exclude_norm_and_bias = paramwise_cfg.pop('exclude_norm_and_bias', True)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        if self.exclude_norm_and_bias:
            if self.base_wd is None:  # mmengine's decay multipliers need a base to multiply
                self.base_wd = _default_weight_decay(self.optimizer_cfg['type'])
            self.paramwise_cfg.setdefault('norm_decay_mult', 0.0)
            self.paramwise_cfg.setdefault('bias_decay_mult', 0.0)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '', **kwargs) -> None:
        super().add_params(params, module, prefix=prefix, **kwargs)  # recurses through self.add_params
        if prefix:  # only the outermost call post-processes
            return
        if self.exclude_norm_and_bias:
            excluded = excluded_parameter_ids(module, self.paramwise_cfg.get('custom_keys', {}))
            for group in params:
                if id(group['params'][0]) in excluded:
                    group.setdefault('lars_exclude', True)
        merged = {}
        for group in params:
            key = tuple(sorted((k, v) for k, v in group.items() if k != 'params'))
            merged.setdefault(key, dict(group, params=[]))['params'].extend(group['params'])
        params[:] = list(merged.values())
