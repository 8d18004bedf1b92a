"""LARS (You, Gitman and Ginsburg, 2017, "Large Batch Training of Convolutional Networks", Algorithm 1) as used by
SimCLR, with multi-tensor ops over all parameters of a group and no host synchronisation.

For a parameter ``w`` with gradient ``g`` in a group with learning rate ``lr``, weight decay ``wd``, LARS coefficient
``eta``, momentum ``mu``, dampening ``damp`` (``w``, ``g``, ``v``: tensors of the parameter's shape)::

    trust = eta |w| / (|g| + wd |w| + eps)   if |w| > 0 and |g| > 0 and not lars_exclude,   else 1
    s     = lr trust                        (the parameter's step size)
    d     = s (g + wd w)
    v     = d                                 on the first step,   v = mu v + (1 - damp) d   afterwards
    w     = w - (d + mu v)  with nesterov,     w = w - v   otherwise     (w = w - d when mu = 0)

This is the update of mmpretrain's ``LARS`` (same arguments and state, ``momentum_buffer``), so configs and
checkpoints carry over. How it is computed, per group and per (device, dtype) of its parameters:

- the norms ``|w|`` and ``|g|`` come from one ``torch._foreach_norm`` each (0-d tensors on the device), are stacked
  into two ``(P,)`` tensors, and all ``P`` step sizes ``s`` come from one ``torch.where`` in float64 (mmpretrain
  takes the ratio in Python floats). ``s`` is cast to the parameters' dtype and unbound into ``P`` 0-d tensors:
  nothing is read on the host (mmpretrain calls ``.item()`` twice per parameter, i.e. waits for the GPU);
- the update runs in place without temporaries, each line one ``torch._foreach_*`` call over the group:
  ``v *= mu``; ``v += k s g``; ``v += k wd s w`` (``k = 1 - damp``, 1 on the first step); ``w -= v``. The
  per-parameter factor enters as ``_foreach_addcmul_(out, [s_1..s_P], tensors, value)``: on CUDA, torch 2.14's
  ``_foreach_addcmul_.Scalar`` runs a list of 0-d ``tensor1`` of the other lists' dtype and device in its
  multi-tensor kernel (one launch per op for the whole group, each factor read on the device; older torch loops
  over the tensors, same values). ``_foreach_mul_(TensorList, [0-d tensors])`` would not: its fast path needs
  equal shapes, and its ``.Tensor`` overload takes one factor for all. The other lists share shapes and strides
  with the parameters (channels-last included), as the fast path requires;
- groups with ``lars_exclude=True`` (norm layers and biases, chosen by kind in ``SimCLROptimWrapperConstructor``)
  have ``trust = 1``: ``s = lr`` is a Python float and the ops take it as ``alpha``; their ``weight_decay`` (0
  there) is honoured as given.

On CPU a ``_foreach_*`` op is a loop of the single-tensor op, so the step is ~6 passes over the parameters without
temporaries (mmpretrain's loop makes three temporaries per parameter), which is faster than mmpretrain's step
(``tools/benchmark/lars.py``) and small next to a training step (convolution-bound).
"""
from typing import Dict, Iterable, List, Tuple, Union

import torch
from torch.optim.optimizer import Optimizer

from mmsimclr.registry import OPTIMIZERS

Factor = Union[float, List[torch.Tensor]]  # one Python step size, or one 0-d tensor per parameter


@OPTIMIZERS.register_module()
class LARS(Optimizer):
    """Layer-wise adaptive rate scaling on top of SGD with momentum.

    Args:
        params (Iterable): parameters or parameter groups; a group may set ``lars_exclude=True`` (no trust ratio)
            and its own ``lr``, ``weight_decay``, ``momentum``, ``dampening``, ``eta``, ``nesterov``, ``eps``.
        lr (float): learning rate.
        momentum (float): momentum ``mu``. Defaults to 0.
        weight_decay (float): L2 weight decay ``wd``. Defaults to 0.
        dampening (float): dampening of the momentum. Defaults to 0.
        eta (float): LARS coefficient. Defaults to 0.001.
        nesterov (bool): Nesterov momentum. Defaults to False.
        eps (float): added to the trust ratio's denominator. Defaults to 1e-8.
    """

    def __init__(self,
                 params: Iterable,
                 lr: float,
                 momentum: float = 0,
                 weight_decay: float = 0,
                 dampening: float = 0,
                 eta: float = 0.001,
                 nesterov: bool = False,
                 eps: float = 1e-8) -> None:
        if not isinstance(lr, (int, float)) or lr < 0.0:
            raise ValueError(f'LARS: invalid learning rate {lr!r} (a number >= 0)')
        if momentum < 0.0:
            raise ValueError(f'LARS: invalid momentum {momentum} (>= 0)')
        if weight_decay < 0.0:
            raise ValueError(f'LARS: invalid weight_decay {weight_decay} (>= 0)')
        if eta < 0.0:
            raise ValueError(f'LARS: invalid LARS coefficient eta={eta} (>= 0)')
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError('LARS: Nesterov momentum needs momentum > 0 and dampening = 0')
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                        eta=eta, eps=eps, lars_exclude=False)
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault('nesterov', False)
            group.setdefault('eps', 1e-8)
            group.setdefault('lars_exclude', False)

    # Kept out of torch.compile's graphs (``--compile`` compiles the whole ``train_step``): traced, every new
    # learning rate from the scheduler (a Python float in the group) would recompile the step. Eagerly it is
    # already a few multi-tensor kernels per group.
    @torch.compiler.disable
    @torch.no_grad()
    def step(self, closure=None):
        """One LARS step (see the module docstring for the formulas). Returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for (params, grads, bufs), first in self._lists(group).values():
                self._update(group, params, grads, bufs, first)
        return loss

    def _lists(self, group: dict) -> Dict[tuple, Tuple[tuple, bool]]:
        """The group's parameters with a gradient, their gradients and momentum buffers (created, zero, if
        missing), as lists per (device, dtype) and, where it matters (dampening), per first step or not: one
        ``_foreach_*`` call takes one device and dtype, and a fresh buffer gets no dampening."""
        lists: Dict[tuple, Tuple[tuple, bool]] = {}
        momentum, damped = group['momentum'] != 0, group['dampening'] != 0
        for p in group['params']:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError('LARS does not support sparse gradients; use dense gradients (e.g. '
                                   'nn.Embedding(sparse=False))')
            first = False
            if momentum:
                state = self.state[p]
                if 'momentum_buffer' not in state:
                    state['momentum_buffer'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    first = True
            key = (p.device, p.dtype, first and damped)
            entry = lists.get(key)
            if entry is None:
                entry = lists[key] = (([], [], []), key[2])
            params, grads, bufs = entry[0]
            params.append(p)
            grads.append(p.grad)
            if momentum:
                bufs.append(self.state[p]['momentum_buffer'])
        return lists

    @staticmethod
    def _step_sizes(group: dict, params: List[torch.Tensor], grads: List[torch.Tensor]) -> Factor:
        """``s = lr * trust`` per parameter as 0-d tensors of the parameters' dtype on their device (the ratio in
        float64), or ``lr`` itself for an excluded group (trust 1)."""
        if group['lars_exclude']:
            return float(group['lr'])
        lr, wd, eta, eps = group['lr'], group['weight_decay'], group['eta'], group['eps']
        w_norm = torch.stack(torch._foreach_norm(params)).double()  # (P,)
        g_norm = torch.stack(torch._foreach_norm(grads)).double()
        trust = torch.where((w_norm != 0) & (g_norm != 0), eta * w_norm / (g_norm + wd * w_norm + eps), 1.0)
        return list((trust * lr).to(params[0].dtype).unbind())

    def _update(self, group: dict, params: List[torch.Tensor], grads: List[torch.Tensor],
                bufs: List[torch.Tensor], first: bool) -> None:
        """The update of one list of parameters of one device and dtype (see the module docstring)."""
        wd, mu, nesterov = group['weight_decay'], group['momentum'], group['nesterov']
        s = self._step_sizes(group, params, grads)
        if mu == 0:  # w -= s wd w; w -= s g   (the decay first: d is taken at the old w)
            if wd != 0:
                _add_scaled_(params, s, params, -wd)
            _add_scaled_(params, s, grads, -1.0)
            return
        k = 1.0 if first else 1.0 - group['dampening']  # the first step: v = d (a fresh buffer is zero)
        torch._foreach_mul_(bufs, mu)
        _add_scaled_(bufs, s, grads, k)
        if wd != 0:
            _add_scaled_(bufs, s, params, k * wd)
        if nesterov:  # w -= d + mu v
            if wd != 0:
                _add_scaled_(params, s, params, -wd)
            _add_scaled_(params, s, grads, -1.0)
            torch._foreach_add_(params, bufs, alpha=-mu)
        else:
            torch._foreach_sub_(params, bufs)


def _add_scaled_(out: List[torch.Tensor], s: Factor, tensors: List[torch.Tensor], value: float) -> None:
    """``out_i += value * s_i * tensors_i`` for all ``i``: one multi-tensor op, ``s`` a Python float or a list of
    0-d tensors (the form ``_foreach_addcmul_`` runs as one multi-tensor kernel on CUDA)."""
    if isinstance(s, float):
        torch._foreach_add_(out, tensors, alpha=value * s)
    else:
        torch._foreach_addcmul_(out, s, tensors, value=value)
