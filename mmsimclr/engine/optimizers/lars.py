"""LARS (You, Gitman and Ginsburg, 2017, "Large Batch Training of Convolutional Networks", Algorithm 1) as used by
SimCLR, computed on-device for all parameters of a group at once.

For a parameter ``w`` with gradient ``g`` in a group with learning rate ``lr``, weight decay ``wd``, LARS coefficient
``eta``, momentum ``mu``, dampening ``damp`` (``w``, ``g``, ``v``: tensors of the parameter's shape):

    trust = eta |w| / (|g| + wd |w| + eps)   if |w| > 0 and |g| > 0 and not lars_exclude,   else 1
    d     = lr trust (g + wd w)
    v     = d                                 on the first step,   v = mu v + (1 - damp) d   afterwards
    w     = w - (d + mu v)  with nesterov,     w = w - v   otherwise     (w = w - d when mu = 0)

This is the update of mmpretrain's ``LARS`` (same arguments and state, ``momentum_buffer``), so configs and
checkpoints carry over. What differs is how it is computed:

- the norms of all parameters and gradients of a group come from one ``torch._foreach_norm`` each and the trust
  ratios from one ``torch.where`` on the stacked norms: no ``.item()``, hence no host synchronisation per parameter
  on GPUs;
- the update runs in place without temporaries, with the per-parameter factor ``s = lr * trust`` as a 0-d tensor:
  ``v = mu v + (1 - damp) s g + (1 - damp) s wd w`` (two ``addcmul_``), ``w -= v``, each a ``torch._foreach_*``
  call over the group. On CPU, where a ``_foreach_*`` op is a loop over the tensors, the parameters (with their
  gradients and buffers) are cut into flat slices and the ops run block after block of ``block_size`` elements,
  so a block is still in cache for its next op, and the norms of a run of parameters are taken just before that
  run's update: close to 3 reads and 2 writes of each element from memory per step instead of one full pass per
  op plus the temporaries of mmpretrain's per-parameter loop;
- the exclusions come from the parameter groups: a group with ``lars_exclude=True`` (norm layers and biases, chosen
  by kind in ``SimCLROptimWrapperConstructor``) gets ``trust = 1``; its ``weight_decay`` (0 there) is honoured as
  given.
"""
from typing import Iterable, Iterator, List, Optional, Union

import torch
from torch.optim.optimizer import Optimizer

from mmsimclr.registry import OPTIMIZERS


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
        foreach (bool, optional): ``torch._foreach_*`` ops over each group (True) or the same in-place ops
            parameter by parameter (False). Defaults to None: True (False was slower on CPU as well in
            tools/benchmark/lars.py; kept as an option).
        block_size (int | 'auto' | None): slice the parameters into blocks of this many elements and run the
            update block after block (see above). Defaults to 'auto': 262144 (1 MiB of float32 per tensor) on CPU,
            None (whole tensors: one multi-tensor kernel per op) on CUDA.
    """

    def __init__(self,
                 params: Iterable,
                 lr: float,
                 momentum: float = 0,
                 weight_decay: float = 0,
                 dampening: float = 0,
                 eta: float = 0.001,
                 nesterov: bool = False,
                 eps: float = 1e-8,
                 foreach: Optional[bool] = None,
                 block_size: Union[int, str, None] = 'auto') -> None:
        if not isinstance(lr, (int, float)) or lr < 0.0:
            raise ValueError(f'LARS: invalid learning rate {lr!r}')
        if momentum < 0.0:
            raise ValueError(f'LARS: invalid momentum {momentum}')
        if weight_decay < 0.0:
            raise ValueError(f'LARS: invalid weight_decay {weight_decay}')
        if eta < 0.0:
            raise ValueError(f'LARS: invalid LARS coefficient eta={eta}')
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError('LARS: Nesterov momentum needs momentum > 0 and dampening = 0')
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                        eta=eta, eps=eps, lars_exclude=False)
        if block_size != 'auto' and block_size is not None and (not isinstance(block_size, int) or block_size < 1):
            raise ValueError(f"LARS: block_size must be 'auto', None or a positive int, got {block_size!r}")
        self.foreach = foreach
        self.block_size = block_size
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault('nesterov', False)
            group.setdefault('eps', 1e-8)
            group.setdefault('lars_exclude', False)

    @staticmethod
    def _step_sizes(group: dict, params: List[torch.Tensor], grads: List[torch.Tensor]) -> List[torch.Tensor]:
        """``lr * trust`` per parameter, as 0-d tensors on the parameters' device (float64 ratio, then cast)."""
        lr, wd, eta, eps = group['lr'], group['weight_decay'], group['eta'], group['eps']
        w_norm = torch.stack(torch._foreach_norm(params)).double()  # (P,)
        g_norm = torch.stack(torch._foreach_norm(grads)).double()
        adaptive = (w_norm != 0) & (g_norm != 0)
        trust = torch.where(adaptive, eta * w_norm / (g_norm + wd * w_norm + eps), torch.ones_like(w_norm))
        return list((trust * lr).to(params[0].dtype).unbind())

    # Kept out of torch.compile's graphs (``--compile`` compiles the whole ``train_step``): traced, every new
    # learning rate from the scheduler (a Python float in the group) would recompile the step, and the blocked
    # CPU update would unroll into thousands of graph nodes. Eagerly it is already a few multi-tensor kernels.
    @torch.compiler.disable
    @torch.no_grad()
    def step(self, closure=None):
        """One LARS step (see the module docstring for the formulas). Returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group['params'] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError('LARS does not support sparse gradients')
            # one dtype and device per call of the multi-tensor ops
            buckets = {}
            for p in params:
                buckets.setdefault((p.device, p.dtype), []).append(p)
            for bucket in buckets.values():
                block = self._block_size(bucket[0])
                for part in (_consecutive(bucket, block) if block else [bucket]):
                    self._update(group, part)
        return loss

    def _block_size(self, p: torch.Tensor) -> Optional[int]:
        if self.block_size != 'auto':
            return self.block_size
        return None if p.is_cuda else 262144

    def _update(self, group: dict, params: List[torch.Tensor]) -> None:
        grads = [p.grad for p in params]
        lr, wd, mu = group['lr'], group['weight_decay'], group['momentum']
        damp, nesterov = group['dampening'], group['nesterov']
        # s = lr * trust: 0-d tensors (adaptive groups) or one Python float (excluded groups, trust = 1)
        steps = [lr] * len(params) if group['lars_exclude'] else self._step_sizes(group, params, grads)

        bufs, fresh = [], []
        if mu != 0:
            for p in params:
                state = self.state[p]
                if 'momentum_buffer' not in state:
                    state['momentum_buffer'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    fresh.append(True)
                else:
                    fresh.append(False)
                bufs.append(state['momentum_buffer'])
        # factors applied to g and to w in the momentum update: (1 - damp) s and (1 - damp) s wd; on the first
        # step v = d, i.e. no dampening (v starts at zero here, so "mu v" vanishes as well)
        scale_of = [(1.0 if f else 1.0 - damp) for f in fresh] if mu != 0 else []

        block = self._block_size(params[0])
        foreach = self.foreach if self.foreach is not None else True
        if not foreach:
            pieces = _split(params, grads, bufs, steps, scale_of, block) if block else \
                (params, grads, bufs, steps, scale_of)
            self._update_loop(*pieces, wd, mu, nesterov)
            return
        if not block:
            self._update_foreach(params, grads, bufs, steps, scale_of, lr, wd, mu, nesterov)
            return
        for b in _blocks(params, grads, bufs, steps, scale_of, block):
            self._update_foreach(*b, lr, wd, mu, nesterov)

    @staticmethod
    def _update_loop(params, grads, bufs, steps, scale_of, wd, mu, nesterov) -> None:
        for i, (p, g, s) in enumerate(zip(params, grads, steps)):
            if mu == 0:  # w = w (1 - s wd) - s g
                if wd != 0:
                    p.mul_(1 - s * wd)
                p.addcmul_(g, _neg(s)) if torch.is_tensor(s) else p.add_(g, alpha=-s)
                continue
            v, k = bufs[i], scale_of[i]
            v.mul_(mu)
            _addmul_(v, g, s * k if k != 1.0 else s)
            if wd != 0:
                _addmul_(v, p, s * (k * wd))
            if nesterov:  # w = w - d - mu v,   d = s (g + wd w)
                if wd != 0:
                    p.mul_(1 - s * wd)
                _addmul_(p, g, _neg(s))
                p.add_(v, alpha=-mu)
            else:
                p.sub_(v)

    @staticmethod
    def _update_foreach(params, grads, bufs, steps, scale_of, lr, wd, mu, nesterov) -> None:
        scalar = not torch.is_tensor(steps[0])  # excluded group: one Python step size for all
        if mu == 0:
            if wd != 0:
                torch._foreach_mul_(params, 1 - lr * wd if scalar else [1 - s * wd for s in steps])
            if scalar:
                torch._foreach_add_(params, grads, alpha=-lr)
            else:
                torch._foreach_addcmul_(params, grads, [_neg(s) for s in steps])
            return
        g_factor = [s * k if k != 1.0 else s for s, k in zip(steps, scale_of)]
        torch._foreach_mul_(bufs, mu)
        if scalar and len(set(scale_of)) == 1:
            torch._foreach_add_(bufs, grads, alpha=g_factor[0])
            if wd != 0:
                torch._foreach_add_(bufs, params, alpha=g_factor[0] * wd)
        else:
            torch._foreach_addcmul_(bufs, grads, [_as_tensor(f, g) for f, g in zip(g_factor, grads)])
            if wd != 0:
                torch._foreach_addcmul_(bufs, params, [_as_tensor(f * wd, p) for f, p in zip(g_factor, params)])
        if nesterov:
            if wd != 0:
                torch._foreach_mul_(params, 1 - lr * wd if scalar else [1 - s * wd for s in steps])
            if scalar:
                torch._foreach_add_(params, grads, alpha=-lr)
            else:
                torch._foreach_addcmul_(params, grads, [_neg(s) for s in steps])
            torch._foreach_add_(params, bufs, alpha=-mu)
        else:
            torch._foreach_sub_(params, bufs)


def _flat(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a 1-D view in memory order (``t`` is dense: contiguous or channels-last)."""
    return t.as_strided((t.numel(), ), (1, ), t.storage_offset())


def _consecutive(params: List[torch.Tensor], block: int) -> Iterator[List[torch.Tensor]]:
    """Runs of consecutive parameters of at most ``block`` elements in all (a larger parameter alone): each run's
    norms are computed just before its update, so the update finds its tensors still in cache."""
    run, size = [], 0
    for p in params:
        if run and size + p.numel() > block:
            yield run
            run, size = [], 0
        run.append(p)
        size += p.numel()
    if run:
        yield run


def _split(params, grads, bufs, steps, scale_of, block: int) -> tuple:
    """The five lists with every parameter of more than ``block`` elements (and its gradient and momentum buffer)
    replaced by consecutive slices of at most ``block`` elements of its flat view."""
    out = [[], [], [], [], []]
    for i, (p, g) in enumerate(zip(params, grads)):
        tensors = [p, g] + ([bufs[i]] if bufs else [])
        dense = (p.is_contiguous() or p.is_contiguous(memory_format=torch.channels_last)) and \
            all(t.stride() == p.stride() for t in tensors)
        pieces = [_flat(t).split(block) for t in tensors] if dense and p.numel() > block else [[t] for t in tensors]
        out[0].extend(pieces[0])
        out[1].extend(pieces[1])
        if bufs:
            out[2].extend(pieces[2])
            out[4].extend([scale_of[i]] * len(pieces[0]))
        out[3].extend([steps[i]] * len(pieces[0]))
    return tuple(out)


def _blocks(params, grads, bufs, steps, scale_of, block: int) -> Iterator[tuple]:
    """``_split``'s slices grouped into consecutive blocks of about ``block`` elements."""
    pieces = _split(params, grads, bufs, steps, scale_of, block)
    start, size = 0, 0
    for k, t in enumerate(pieces[0]):
        size += t.numel()
        if size >= block or k == len(pieces[0]) - 1:
            yield tuple(lst[start:k + 1] for lst in pieces)
            start, size = k + 1, 0


def _neg(s):
    return -s


def _as_tensor(x, like: torch.Tensor) -> torch.Tensor:
    return x if torch.is_tensor(x) else torch.tensor(x, dtype=like.dtype, device=like.device)


def _addmul_(out: torch.Tensor, t: torch.Tensor, factor) -> None:
    """``out += factor * t`` for a Python or 0-d tensor ``factor`` (no host sync)."""
    if torch.is_tensor(factor):
        out.addcmul_(t, factor)
    else:
        out.add_(t, alpha=factor)
