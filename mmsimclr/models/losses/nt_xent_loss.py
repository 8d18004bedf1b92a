"""NT-Xent, the normalised temperature-scaled cross-entropy loss of SimCLR (Chen et al., 2020, Eq. 1).

For an anchor ``i`` with positive ``j`` (another view of the same image), with cosine similarity
``sim(u, v) = u.v / (|u| |v|)`` and temperature ``tau``:

    l(i, j) = -log( exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau) )

and the loss is the mean of ``l`` over every anchor of the (global) batch. With more than two views an anchor has
``V - 1`` positives and ``l`` is averaged over them (each one still competing against all ``k != i``); for ``V = 2``
this is exactly the paper's loss.

Distributed layout: each rank holds ``m = n * V`` local rows ordered sample-major (row ``i`` is view ``i % V`` of
sample ``i // V``, the order mmpretrain's SimCLR uses). The columns are the rows of all ranks, gathered with a
gradient-summing all-gather, so a rank builds only its own ``m x (world_size * m)`` similarity block: no
``(2N x 2N)`` matrix per rank, no ``masked_select`` (static shapes; the self-similarity is set to ``-inf``).
The returned value is the mean over the local rows; DDP's gradient averaging then yields the gradient of the mean
over the global batch (see ``mmsimclr.models.utils.gather``).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmsimclr.models.utils import all_gather_with_grad, rank_and_world
from mmsimclr.registry import MODELS


@MODELS.register_module()
class NTXentLoss(nn.Module):
    """NT-Xent loss.

    Args:
        temperature (float): ``tau`` above; must be > 0. Defaults to 0.1 (the paper's ImageNet setting).
        gather_distributed (bool): use negatives from all ranks (the paper's large-batch setting). Defaults to True.
        loss_weight (float): multiplies the loss. Defaults to 1.0.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(f'NTXentLoss: temperature must be a number > 0, got {temperature!r} '
                             '(set model.head.temperature, e.g. 0.1 for ImageNet, 0.5 for CIFAR-10)')
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed
        self.loss_weight = loss_weight

    @staticmethod
    def positive_index(num_rows: int, num_views: int, offset: int, device) -> torch.Tensor:
        """Column index of the ``V - 1`` positives of each local row: shape ``(num_rows, V - 1)``."""
        rows = torch.arange(num_rows, device=device)
        first = rows // num_views * num_views  # first row of the row's sample
        others = torch.arange(1, num_views, device=device)  # shifts to the other views
        views = (rows % num_views)[:, None]
        return offset + first[:, None] + (views + others[None, :]) % num_views

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
        columns = all_gather_with_grad(z) if world_size > 1 else z  # (world_size * m, d)
        m = z.shape[0]
        offset = rank * m

        logits = z @ columns.t() / self.temperature  # (m, world_size * m)
        self_index = torch.arange(m, device=z.device)[:, None] + offset
        logits = logits.scatter(1, self_index, float('-inf'))  # k != i
        log_prob = logits.log_softmax(dim=1)
        positives = self.positive_index(m, num_views, offset, z.device)
        return -log_prob.gather(1, positives).mean() * self.loss_weight
