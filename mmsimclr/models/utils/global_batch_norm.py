"""Global batch normalisation: BN statistics over the batch of *all* ranks.

The SimCLR paper (Sec. 3, "Global BN") normalises with the mean and variance of the global batch so that a positive
pair processed on the same device cannot be recognised from local BN statistics (an information leak that lets the
contrastive task be solved without learning good features).

On CUDA this defers to ``torch.nn.SyncBatchNorm``. torch's SyncBatchNorm refuses CPU tensors, so for CPU (gloo)
runs -- how CI tests distribution -- the statistics are gathered here with a differentiable all-reduce of the
per-channel sums ``S1 = sum x``, ``S2 = sum x^2`` and the count ``M``:

    mean = S1 / M,    var = S2 / M - mean^2    (biased; running_var gets the unbiased M / (M - 1) * var)
    y = (x - mean) / sqrt(var + eps) * weight + bias

Gradients flow through the all-reduce (its backward all-reduces the gradient), so the backward pass is the exact
gradient of global BN. In a single process the layer is plain BatchNorm.

Input ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)``; output has the same shape. State-dict keys are BatchNorm's.
"""
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce

from mmsimclr.registry import MODELS


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


@MODELS.register_module(name='GlobalBN')
class GlobalBatchNorm(nn.SyncBatchNorm):
    """``SyncBatchNorm`` that also works on CPU process groups (gloo). Registered as ``GlobalBN``."""

    _abbr_ = 'bn'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f'GlobalBN expects at least 2-D input (N, C, ...), got shape {tuple(x.shape)}')
        use_batch_stats = self.training or not self.track_running_stats
        if not use_batch_stats or _world_size() == 1:
            return self._local_forward(x)
        if x.is_cuda:
            return super().forward(x)
        return self._cpu_global_forward(x)

    def _local_forward(self, x: torch.Tensor) -> torch.Tensor:
        # plain BatchNorm (SyncBatchNorm's own forward would insist on an accelerator)
        return _BatchNorm.forward(self, x)

    def _cpu_global_forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        count = torch.tensor([x.numel() / c], dtype=torch.float32, device=x.device)
        stats = torch.cat([xf.sum(dims), (xf * xf).sum(dims), count])
        stats = differentiable_all_reduce(stats, op=dist.ReduceOp.SUM)
        total = stats[-1]
        mean = stats[:c] / total
        var = (stats[c:2 * c] / total - mean * mean).clamp_min(0)

        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (total / (total - 1).clamp_min(1))
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)

        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)
