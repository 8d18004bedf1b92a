"""Differentiable all-gather whose backward sums the gradient over ranks.

Why our own: in SimCLR every rank's loss depends on every rank's embeddings (they are the negatives), so the
gradient that reaches rank r's embeddings is the sum, over all ranks s, of d L_s / d z_r. mmpretrain's
``GatherLayer`` keeps only the local slice of the incoming gradient (d L_r / d z_r) and, since each of its ranks
computes the loss of the *whole* global batch, ends up with exactly 1/world_size of the true gradient once DDP has
averaged. Here the incoming gradients are summed across ranks first (an all-reduce, then each rank keeps its own
slice), so with a per-rank loss averaged by DDP the result equals the single-process gradient on the global batch.

One path for every backend: an all-reduce of the ``(world_size * m, d)`` gradient instead of NCCL's
reduce-scatter, so that what runs on GPUs is what CI's 2-rank gloo tests run. The cost is small: ``world_size *
m * d`` floats (8192 x 128 x 4 bytes = 4 MiB at the paper's batch of 4096) once per step.

Shapes: ``x`` is ``(m, ...)`` on every rank (same ``m`` everywhere); the result is ``(world_size * m, ...)``,
rank-major.
"""
import torch
import torch.distributed as dist


def _dist_ready() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllGatherSumGrad(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world_size = dist.get_world_size()
        ctx.rank, ctx.world_size, ctx.m = dist.get_rank(), world_size, x.shape[0]
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(world_size)]
        dist.all_gather(parts, x)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.m:(ctx.rank + 1) * ctx.m].clone()


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all ranks along dim 0; gradients flow back summed over ranks.

    Without an initialised process group (or with one process) it returns ``x`` unchanged.
    """
    if not _dist_ready():
        return x
    return _AllGatherSumGrad.apply(x)


def rank_and_world() -> tuple:
    """``(rank, world_size)``; ``(0, 1)`` outside distributed runs."""
    if not _dist_ready():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()
