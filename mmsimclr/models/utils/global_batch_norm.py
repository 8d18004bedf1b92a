"""Global batch normalisation: BN statistics over the batch of *all* ranks.

The SimCLR paper (Sec. 3, "Global BN") normalises with the mean and variance of the global batch so that a positive
pair processed on the same device cannot be recognised from local BN statistics (an information leak that lets the
contrastive task be solved without learning good features).

Why not ``torch.nn.SyncBatchNorm``: it refuses CPU tensors, and DDP refuses a CPU module that contains one, so CPU
(gloo) runs -- how CI tests distribution -- could not use it. This layer is a plain ``_BatchNorm`` subclass that works
on any device: the global statistics come from one differentiable all-gather of the per-rank statistics and
their exact combination (Chan et al.'s parallel variance; more accurate in float32 than ``E[x^2] - E[x]^2``):

    rank r holds n_r values per channel with mean m_r and biased variance v_r (``torch.var_mean``)
    mean = sum_r n_r m_r / M,    var = sum_r n_r (v_r + (m_r - mean)^2) / M,    M = sum_r n_r
    y = (x - mean) / sqrt(var + eps) * weight + bias
    running_var is updated with the unbiased M / (M - 1) * var

The per-rank statistics are exchanged with a differentiable all-gather whose backward sums the gradient over ranks,
so the backward pass is the exact gradient of global BN. In a single process the layer is plain BatchNorm.

Input ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)``; output has the same shape. State-dict keys are BatchNorm's.
"""
import torch
import torch.distributed as dist
from torch.nn.modules.batchnorm import _BatchNorm

from mmsimclr.models.utils.gather import all_gather_with_grad
from mmsimclr.registry import MODELS


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


@MODELS.register_module(name='GlobalBN')
class GlobalBatchNorm(_BatchNorm):
    """Batch norm with global-batch statistics under ``torch.distributed`` (any backend, any device).
    Registered as ``GlobalBN``; ``torch.nn.SyncBatchNorm`` (``SyncBN``) remains available for CUDA-only runs."""

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
        if not use_batch_stats or _world_size() == 1:
            return super().forward(x)  # plain BatchNorm
        return self._global_forward(x)

    def _global_forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        xf = x if x.dtype == torch.float64 else x.float()
        local_var, local_mean = torch.var_mean(xf, dim=dims, unbiased=False)
        local_count = torch.full((1, ), x.numel() / c, dtype=xf.dtype, device=x.device)
        stats = all_gather_with_grad(torch.cat([local_mean, local_var, local_count])[None])  # (W, 2C + 1)
        means, variances, counts = stats[:, :c], stats[:, c:2 * c], stats[:, 2 * c:]
        total = counts.sum()
        mean = (counts * means).sum(0) / total
        var = (counts * (variances + (means - mean) ** 2)).sum(0) / total

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
