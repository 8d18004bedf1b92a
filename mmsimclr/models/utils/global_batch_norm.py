"""Global batch normalisation: BN statistics over the batch of *all* ranks.

The SimCLR paper (Sec. 3, "Global BN") normalises with the mean and variance of the global batch so that a positive
pair processed on the same device cannot be recognised from local BN statistics (an information leak that lets the
contrastive task be solved without learning good features).

Why not ``torch.nn.SyncBatchNorm``: it refuses CPU tensors, and DDP refuses a CPU module that contains one, so CPU
(gloo) runs -- how CI tests distribution -- could not use it. This layer is a plain ``_BatchNorm`` subclass that works
on any device and backend. In a single process (or in eval mode with running statistics) it *is* BatchNorm.

Forward, per channel (rank r holds n_r values with mean m_r and biased variance v_r, statistics in float32, or
float64 for float64 input, whatever the input dtype):

    one all-gather of (m_r, v_r or 1/sqrt(v_r + eps), n_r) from every rank, then the exact parallel combination
    (Chan et al.; more accurate than ``E[x^2] - E[x]^2``):
    mean = sum_r n_r m_r / M,    var = sum_r n_r (v_r + (m_r - mean)^2) / M,    M = sum_r n_r
    y = (x - mean) * invstd * weight + bias,    invstd = 1 / sqrt(var + eps)
    running_var is updated with the unbiased M / (M - 1) * var

Backward (g = dL/dy, xhat = (x - mean) * invstd; sums over the local batch and spatial positions):

    one all-reduce of (sum g, sum g * xhat) over ranks, then
    dL/dx = weight * invstd * (g - sum_all(g) / M - xhat * sum_all(g * xhat) / M)
    dL/dweight = sum_local(g * xhat),  dL/dbias = sum_local(g)   (local: DDP averages parameter gradients)

Why a custom ``autograd.Function``: written as a chain of element-wise tensor ops, autograd keeps the float copy of
``x``, ``x - mean``, the normalised tensor and more for backward -- twice BatchNorm's activation memory in float32,
three times under bf16 autocast (measured on ResNet-50), which does not fit a 256-image ResNet-50 batch on an 80 GB
GPU. The function keeps only what BatchNorm keeps: the input (in its own dtype), and per-channel mean and invstd.

Kernels: one code path on every device -- the one CI runs with 2 gloo ranks on CPU. The statistics come from
``batch_norm_update_stats`` (BatchNorm's own one-pass kernel), the element-wise passes from BatchNorm's fused
inference kernel (``torch.batch_norm`` with ``training=False`` and the global statistics) and the backward sums
from ``native_batch_norm_backward`` (its grad_weight and grad_bias are exactly sum g * xhat and sum g); each has
CPU and CUDA kernels. There is deliberately no CUDA-only branch (an earlier one rebuilt ``SyncBatchNorm`` from
``batch_norm_stats`` / ``batch_norm_gather_stats_with_counts`` / ``batch_norm_elemt`` / ``batch_norm_backward_*`` and
never ran in a test), and the collectives are ``all_gather`` (list form) and ``all_reduce``, which gloo and NCCL both
run, instead of NCCL-only ``all_gather_into_tensor``: the statistics rows are ``2C + 1`` numbers, so the list form
costs nothing measurable.

Saved for backward, on any device: the input (in its own dtype, the tensor BatchNorm2d saves too) and two
``(C,)`` vectors (mean, invstd); the float32 copy of a reduced-precision input made for the statistics and the
output are not saved. So the saved activations are BatchNorm2d's plus ``2C`` floats per layer (BatchNorm2d itself
saves ``save_mean``/``save_invstd`` of the same size): measured equal on CPU
(``tests/test_models/test_utils/test_distributed.py``), and the same by construction on CUDA since the autograd
function and its ``save_for_backward`` are the same code.

Input ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)`` (any memory format); output has the same shape, dtype and memory
format (as BatchNorm under autocast: the input's dtype). State-dict keys are BatchNorm's.
A rank may hold an empty local batch (its statistics count zero).
"""
from typing import Optional, Tuple

import torch
import torch.distributed as dist
from torch.autograd.function import once_differentiable
from torch.nn.modules.batchnorm import _BatchNorm

from mmsimclr.registry import MODELS
from .gather import rank_and_world


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _all_gather_rows(row: torch.Tensor, world_size: int) -> torch.Tensor:
    """``(K,)`` on every rank -> ``(world_size, K)``, rank-major (not differentiable; used inside the Function).
    The list form of ``all_gather``: gloo and NCCL alike."""
    row = row.contiguous()
    parts = [torch.empty_like(row) for _ in range(world_size)]
    dist.all_gather(parts, row)
    return torch.stack(parts)


def _combine(stats: torch.Tensor, c: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows ``(mean_r, var_r, n_r)`` of shape ``(W, 2C + 1)`` -> global ``(mean, biased var, M)`` (Chan et al.)."""
    means, variances, counts = stats[:, :c], stats[:, c:2 * c], stats[:, 2 * c:]
    total = counts.sum()
    mean = (counts * means).sum(0) / total
    var = (counts * (variances + (means - mean)**2)).sum(0) / total
    return mean, var, total


class _GlobalBatchNormFunction(torch.autograd.Function):
    """``y = (x - mean) * invstd * weight + bias`` with global-batch ``mean``/``invstd``; saves x, mean, invstd."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                running_mean: Optional[torch.Tensor], running_var: Optional[torch.Tensor], eps: float,
                momentum: float, world_size: int) -> torch.Tensor:
        c = x.shape[1]
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32  # statistics dtype
        fmt = _memory_format(x)
        x = x.contiguous(memory_format=fmt)
        count = x.numel() // c if c else 0
        with torch.autocast(x.device.type, enabled=False):
            if count == 0:
                local_mean = local_var = x.new_zeros(c, dtype=acc)
            else:  # BatchNorm's own statistics kernel (one pass, any memory format), in float32 or float64
                local_mean, local_var = torch.batch_norm_update_stats(x.to(acc), None, None, 0.0)
            row = torch.cat([local_mean, local_var, local_mean.new_full((1, ), count)])
            mean, var, total = _combine(_all_gather_rows(row, world_size), c)
            if running_mean is not None:
                unbiased = var * (total / (total - 1).clamp_min(1))
                running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
                running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
            w = None if weight is None else weight.to(acc)
            b = None if bias is None else bias.to(acc)
            # BatchNorm's fused inference kernel applied with the global statistics
            y = torch.batch_norm(x, w, b, mean, var, False, 0.0, eps, False)
            invstd = torch.rsqrt(var + eps)
            ctx.total = total  # a 0-d tensor on x's device: no host sync
        ctx.eps = eps
        ctx.save_for_backward(x, weight, mean, invstd)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        x, weight, mean, invstd = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_y = grad_y.contiguous(memory_format=_memory_format(x))
        grad_x = grad_w = grad_b = None
        with torch.autocast(x.device.type, enabled=False):
            _, sum_dy_xhat, sum_dy = torch.ops.aten.native_batch_norm_backward(
                grad_y, x, None, None, None, mean, invstd, True, ctx.eps, [False, True, True])
            grad_w, grad_b = sum_dy_xhat, sum_dy  # local sums (the all-reduce below works on a copy)
            if need_x:
                sums = torch.cat([sum_dy, sum_dy_xhat])
                dist.all_reduce(sums, op=dist.ReduceOp.SUM)
                sum_dy, sum_dy_xhat = sums.chunk(2)
                scale = invstd if weight is None else invstd * weight.to(invstd.dtype)
                # dL/dx = scale * g - k * (x - mean) - scale * mean(g), k = scale * invstd * mean(g * xhat):
                # BatchNorm's inference kernel gives the last two terms (one pass), addcmul_ adds scale * g
                k = scale * invstd * (sum_dy_xhat / ctx.total)
                xa = x.to(invstd.dtype)  # float32 arithmetic for reduced-precision input
                grad_x = torch.batch_norm(xa, -k, -scale * (sum_dy / ctx.total), mean, torch.ones_like(mean),
                                          False, 0.0, 0.0, False)
                shape = [1, -1] + [1] * (x.dim() - 2)
                grad_x = grad_x.addcmul_(grad_y, scale.view(shape)).to(x.dtype)
        if weight is None or not need_w:
            grad_w = None
        if weight is None or not need_b:
            grad_b = None
        return grad_x, grad_w, grad_b, None, None, None, None, None


@MODELS.register_module(name='GlobalBN')
class GlobalBatchNorm(_BatchNorm):
    """Batch norm with global-batch statistics under ``torch.distributed`` (any backend, any device).

    Registered as ``GlobalBN``; ``torch.nn.SyncBatchNorm`` (``SyncBN``) remains available for CUDA-only runs.
    Global statistics are used in training (and in eval mode without running statistics) when a process group
    of more than one rank is initialised; otherwise the layer computes exactly what ``BatchNorm`` does.

    Args:
        num_features (int): the channels ``C`` of the ``(N, C, ...)`` input, as torch's ``BatchNorm2d``.
        eps (float): added to the variance before its square root, as torch's; under global statistics, to the
            global variance. Defaults to 1e-5.
        momentum (float, optional): weight of the new batch in the running statistics, as torch's; None: their
            cumulative average. Under global statistics they are updated with the global mean and the global
            unbiased variance, the same on every rank. Defaults to 0.1.
        affine (bool): learnable per-channel ``weight`` and ``bias``, as torch's. Defaults to True.
        track_running_stats (bool): keep running statistics and normalise with them in eval mode, as torch's;
            without them eval mode normalises with the (global) batch statistics too. Defaults to True.
        **kwargs: to ``_BatchNorm`` (``device``, ``dtype`` of the parameters and buffers).
    """

    _abbr_ = 'bn'

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 track_running_stats: bool = True, **kwargs) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, **kwargs)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f'GlobalBN expects at least 2-D input (N, C, ...), got shape {tuple(x.shape)}')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        use_batch_stats = self.training or not self.track_running_stats
        if not use_batch_stats or rank_and_world()[1] == 1:
            return super().forward(x)  # plain BatchNorm
        return self._global_forward(x)

    def _global_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global-batch BN under an initialised process group (also with one rank: used by the benchmark)."""
        if x.shape[1] != self.num_features:
            raise ValueError(f'GlobalBN({self.num_features}) got {x.shape[1]} channels (input {tuple(x.shape)})')
        momentum = 0.0
        update = self.training and self.track_running_stats
        if update:
            self.num_batches_tracked.add_(1)
            momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return _GlobalBatchNormFunction.apply(x, self.weight, self.bias, self.running_mean if update else None,
                                              self.running_var if update else None, self.eps, momentum,
                                              dist.get_world_size())
