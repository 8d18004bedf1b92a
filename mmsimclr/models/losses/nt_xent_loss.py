"""NT-Xent, the normalised temperature-scaled cross-entropy loss of SimCLR (Chen et al., 2020, Eq. 1).

For an anchor ``i`` with positive ``j`` (another view of the same image), with cosine similarity
``sim(u, v) = u.v / (|u| |v|)`` and temperature ``tau``:

    l(i, j) = -log( exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau) )

and the loss is the mean of ``l`` over every anchor of the (global) batch. With more than two views an anchor has
``V - 1`` positives and ``l`` is averaged over them (each one still competing against all ``k != i``); for ``V = 2``
this is exactly the paper's loss.

Distributed layout: each rank holds ``m = n * V`` local rows ordered sample-major (row ``i`` is view ``i % V`` of
sample ``i // V``, the order mmpretrain's SimCLR uses). The columns are the rows of all ranks, gathered with a
gradient-summing all-gather, so a rank builds only its own ``m x M`` similarity block (``M = world_size * m``): no
``(2N x 2N)`` matrix per rank, no ``masked_select`` (static shapes; the self-similarity is set to ``-inf``).
The returned value is the mean over the local rows; DDP's gradient averaging then yields the gradient of the mean
over the global batch (see ``mmsimclr.models.utils.gather``).

Computation (``_NTXentFunction``): with ``a = normalize(z) / tau`` (``m x d``) and ``c`` the gathered
``normalize(z)`` (``M x d``), the logits are ``S = a c^T`` (``m x M``, diagonal of the local block ``-inf``),

    loss = 1/m sum_i [ lse_i - 1/(V-1) sum_{p in P(i)} S_ip ],       lse_i = log sum_k exp(S_ik)
    dloss/dS = 1/m (softmax(S) - T),     T_ip = 1/(V-1) for the positives p of row i, 0 elsewhere
    dloss/da = dS c,                      dloss/dc = dS^T a

so the gradient is written by hand instead of letting autograd keep ``S``, the scaled copy, the masked copy and
the ``log_softmax`` output alive: the only ``m x M`` buffer is ``S`` itself, turned into ``softmax(S)`` in place in
forward and into ``dS`` in place in backward. With ``chunk_size`` set, rows are processed ``chunk_size`` at a time
and backward recomputes each chunk's logits from ``a`` and ``c`` (one more matmul), so the memory is
``chunk_size x M`` instead of ``m x M``: the mode for global batches of 32k and more.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmsimclr.models.utils import all_gather_with_grad, rank_and_world
from mmsimclr.registry import MODELS

# rows per block when an m x M buffer is turned into probabilities (keeps the block in cache between the passes)
_BLOCK_ROWS = 64


def _positive_index(rows: torch.Tensor, num_views: int, offset: int) -> torch.Tensor:
    """Columns of the ``V - 1`` positives of the given local ``rows``: ``(len(rows), V - 1)``."""
    first = rows // num_views * num_views  # first row of the row's sample
    others = torch.arange(1, num_views, device=rows.device)  # shifts to the other views
    views = (rows % num_views)[:, None]
    return offset + first[:, None] + (views + others[None, :]) % num_views


def _masked_logits(a: torch.Tensor, c: torch.Tensor, start: int, stop: int, offset: int,
                   out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``S[start:stop] = a[start:stop] c^T`` with the self-similarity ``S[i, offset + i] = -inf``: ``(stop-start, M)``."""
    s = torch.mm(a[start:stop], c.t(), out=out)
    rows = stop - start
    # element (r, offset + start + r) of a row-major (rows, M) block sits at flat index offset+start + r*(M+1)
    s.as_strided((rows, ), (s.shape[1] + 1, ), s.storage_offset() + offset + start).fill_(float('-inf'))
    return s


def _lse_and_softmax_(s: torch.Tensor) -> torch.Tensor:
    """Per-row ``lse = logsumexp(s)`` (returned, ``(rows,)``); ``s`` is overwritten with ``softmax(s)``.

    Works block by block so each block is read by ``logsumexp`` and rewritten by ``sub_``/``exp_`` while in cache.
    """
    lse = s.new_empty(s.shape[0])
    for i in range(0, s.shape[0], _BLOCK_ROWS):
        block = s[i:i + _BLOCK_ROWS]
        torch.logsumexp(block, dim=1, out=lse[i:i + _BLOCK_ROWS])
        block.sub_(lse[i:i + _BLOCK_ROWS, None]).exp_()
    return lse


class _NTXentFunction(torch.autograd.Function):
    """``loss(a, c)`` as in the module docstring; ``a``: ``(m, d)``, ``c``: ``(M, d)``, float32 -> scalar."""

    @staticmethod
    def forward(ctx, a, c, num_views: int, offset: int, chunk_size: Optional[int]):
        with torch.autocast(a.device.type, enabled=False):  # float32 throughout, also under AMP
            return _NTXentFunction._forward(ctx, a, c, num_views, offset, chunk_size)

    @staticmethod
    def _forward(ctx, a, c, num_views, offset, chunk_size):
        m = a.shape[0]
        pos = _positive_index(torch.arange(m, device=a.device), num_views, offset)  # (m, V-1)
        chunk = m if chunk_size is None else max(1, min(int(chunk_size), m))
        ctx.num_views, ctx.offset, ctx.chunk = num_views, offset, chunk
        # sum_i 1/(V-1) sum_p S_ip = sum_i a_i . mean_p c_p: from the (m, d) inputs, no (m, M) gather needed
        pos_sum = (a * c[pos].mean(dim=1)).sum()
        if chunk >= m:
            probs = _masked_logits(a, c, 0, m, offset)
            lse = _lse_and_softmax_(probs)  # probs = softmax(S), the only (m, M) buffer
            # kept outside save_for_backward: backward turns it into dS in place, so it serves one backward
            ctx.probs = probs
        else:
            lse = a.new_empty(m)
            buf = a.new_empty(chunk, c.shape[0])
            for start in range(0, m, chunk):
                stop = min(start + chunk, m)
                s = _masked_logits(a, c, start, stop, offset, out=buf[:stop - start])
                torch.logsumexp(s, dim=1, out=lse[start:stop])
            ctx.probs = None
        ctx.save_for_backward(a, c, lse)
        return (lse.sum() - pos_sum) / m

    @staticmethod
    def backward(ctx, grad_out):
        with torch.autocast(grad_out.device.type, enabled=False):
            return _NTXentFunction._backward(ctx, grad_out.float())

    @staticmethod
    def _backward(ctx, grad_out):
        a, c, lse = ctx.saved_tensors
        m, num_views, chunk = a.shape[0], ctx.num_views, ctx.chunk
        probs_whole, ctx.probs = ctx.probs, None  # a second backward (retain_graph) recomputes chunk by chunk
        grad_a = torch.empty_like(a)
        grad_c = torch.zeros_like(c)
        buf = None if probs_whole is not None else a.new_empty(chunk, c.shape[0])
        for start in range(0, m, chunk):
            stop = min(start + chunk, m)
            if probs_whole is not None:
                probs = probs_whole  # (m, M) softmax from forward (chunk == m)
            else:  # recompute this chunk's softmax(S) = exp(S - lse) from a, c and the saved lse
                probs = _masked_logits(a, c, start, stop, ctx.offset, out=buf[:stop - start])
                probs.sub_(lse[start:stop, None]).exp_()
            pos = _positive_index(torch.arange(start, stop, device=a.device), num_views, ctx.offset)
            # dS = softmax(S) - T, in place (the grad_out / m factor is applied to the small (., d) products)
            probs.scatter_add_(1, pos, probs.new_full(pos.shape, -1.0 / (num_views - 1)))
            torch.mm(probs, c, out=grad_a[start:stop])  # dS c
            grad_c.addmm_(probs.t(), a[start:stop])  # dS^T a
        scale = grad_out / m
        return grad_a * scale, grad_c * scale, None, None, None


@MODELS.register_module()
class NTXentLoss(nn.Module):
    """NT-Xent loss.

    Examples:
        >>> import torch
        >>> from mmsimclr.models.losses import NTXentLoss
        >>> _ = torch.manual_seed(0)
        >>> loss_fn = NTXentLoss(temperature=0.5)
        >>> # two views of 4 images, sample-major: rows 2k and 2k + 1 are the views of image k
        >>> z0, z1 = torch.randn(4, 16), torch.randn(4, 16)
        >>> z = torch.stack([z0, z1], dim=1).flatten(0, 1)  # (8, 16)
        >>> loss = loss_fn(z, num_views=2)
        >>> loss.shape, loss.dtype
        (torch.Size([]), torch.float32)
        >>> # identical views (cosine similarity 1 with the positive): a lower loss
        >>> bool(loss_fn(torch.stack([z0, z0], dim=1).flatten(0, 1)) < loss)
        True
        >>> # chunked: same value, memory of 3 rows x 8 columns at a time
        >>> torch.allclose(NTXentLoss(temperature=0.5, chunk_size=3)(z), loss)
        True

    Args:
        temperature (float): ``tau`` above; must be > 0. Defaults to 0.1 (the paper's ImageNet setting).
        gather_distributed (bool): use negatives from all ranks (the paper's large-batch setting). Defaults to True.
        loss_weight (float): multiplies the loss. Defaults to 1.0.
        chunk_size (int, optional): process the local rows ``chunk_size`` at a time and recompute their logits in
            backward, so that memory is ``chunk_size x M`` rather than ``m x M`` (``M`` = global rows). Same value
            and gradient, about one more matmul of time. Defaults to None (all rows at once: fastest).
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True, loss_weight: float = 1.0,
                 chunk_size: Optional[int] = None) -> None:
        super().__init__()
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(f'NTXentLoss: temperature must be a number > 0, got {temperature!r} '
                             '(set model.head.temperature, e.g. 0.1 for ImageNet, 0.5 for CIFAR-10)')
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f'NTXentLoss: chunk_size must be a positive int or None, got {chunk_size!r}')
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed
        self.loss_weight = loss_weight
        self.chunk_size = chunk_size

    # Run eagerly inside a torch.compile'd train_step (``--compile``): the hand-written backward's in-place
    # strided writes are not traceable, and an untraceable call here would make Dynamo drop the whole enclosing
    # train_step frame; the loss is a few matmuls and already fused by hand.
    @torch.compiler.disable
    def forward(self, z: torch.Tensor, num_views: int = 2) -> torch.Tensor:
        """Args:
            z: ``(n * V, d)`` projections of this rank, sample-major (not necessarily normalised).
            num_views: ``V``, the number of views per image (>= 2).

        Returns:
            Scalar loss (float32).
        """
        if z.dim() != 2:
            raise ValueError(f'NTXentLoss expects (n * num_views, d) projections, got shape {tuple(z.shape)}')
        if num_views < 2 or z.shape[0] % num_views:
            raise ValueError(f'NTXentLoss: {z.shape[0]} rows cannot be split into samples of {num_views} views '
                             '(each image needs at least two views)')
        z = F.normalize(z.float(), dim=1)  # sim(u, v) = u.v / (|u| |v|), computed in float32 even under AMP
        rank, world_size = rank_and_world() if self.gather_distributed else (0, 1)
        columns = all_gather_with_grad(z) if world_size > 1 else z  # c: (M, d), M = world_size * m
        anchors = z * (1.0 / self.temperature)  # a: (m, d); S = a c^T = sim / tau
        loss = _NTXentFunction.apply(anchors, columns, num_views, rank * z.shape[0], self.chunk_size)
        return loss * self.loss_weight
