"""Label-free measures of a self-supervised embedding: whether training works when there are no labels to ask.

Computed by :class:`mmsimclr.engine.hooks.LabelFreeMonitorHook` on a fixed held-out sample of the training images
(``n`` images, two augmented views each); every function here is plain tensor arithmetic in float64.

* :func:`rankme` -- RankMe (Garrido et al., ICML 2023, "RankMe: Assessing the downstream performance of pretrained
  self-supervised representations by their rank"): the effective rank of the ``(n, D)`` representations ``H``,
  ``exp`` of the entropy of the normalised singular values. 1 = every image maps to one direction (collapse);
  ``min(n, D)`` = all directions used equally. Garrido et al. find it tracks downstream accuracy.
* :func:`alignment` and :func:`uniformity` -- Wang & Isola (ICML 2020, "Understanding contrastive representation
  learning through alignment and uniformity on the hypersphere"), on L2-normalised projections ``z``: the mean
  squared distance between the two views of an image (lower = more invariant to the augmentations) and the log of
  the mean Gaussian potential between different images (lower = spread more evenly over the sphere; 0 = collapsed
  to a point, about -4 for ``t = 2`` when spread out in many dimensions).
* :func:`contrast_accuracy` -- how often the other view of an image is the most similar of the ``2n - 1`` other
  projections: the contrastive task's own top-1 accuracy (google-research/simclr logs it as ``contrast_acc``).
"""
import math

import torch
import torch.nn.functional as F

__all__ = ['MEASURES', 'alignment', 'contrast_accuracy', 'rankme', 'uniformity']

#: The measures' names, as logged under ``labelfree/<name>`` by the monitor hook.
MEASURES = ('rankme', 'alignment', 'uniformity', 'contrast_acc')


def rankme(h: torch.Tensor, eps: float = 1e-7) -> float:
    """Effective rank (RankMe) of the representations ``h`` ``(n, D)``.

    With ``sigma`` the singular values of ``h``,

        p_k = sigma_k / sum_j sigma_j + eps,     RankMe = exp(-sum_k p_k log p_k)

    (``eps`` as in the paper, 1e-7). Between 1 and ``min(n, D)``.

    Args:
        h (Tensor): ``(n, D)`` representations, one row per image (e.g. the backbone features of one view); not
            normalised, not centred. Computed in float64.
        eps (float): added to each normalised singular value ``p_k`` so that ``log p_k`` stays finite for zero
            singular values. Defaults to 1e-7, Garrido et al.'s value.

    Returns:
        float: the effective rank; 1.0 for an all-zero ``h``.

    Raises:
        ValueError: ``h`` is not a non-empty 2-D matrix.
    """
    if h.dim() != 2 or min(h.shape) == 0:
        raise ValueError(f'rankme expects a non-empty (n, D) matrix, got shape {tuple(h.shape)}')
    sigma = torch.linalg.svdvals(h.double())
    total = sigma.sum()
    if total <= 0:
        return 1.0  # all zeros: every image at the origin
    p = sigma / total + eps
    return float(torch.exp(-(p * p.log()).sum()))


def alignment(z_a: torch.Tensor, z_b: torch.Tensor, alpha: float = 2.0) -> float:
    """Alignment ``E_i ||z_a[i] - z_b[i]||^alpha`` of the L2-normalised projections of the two views.

    In [0, 4] for ``alpha = 2``; lower means more invariant to the augmentations.

    Args:
        z_a, z_b (Tensor): ``(n, d)`` projections of the first and of the second view; row ``i`` of both is the
            same image. L2-normalised here, in float64.
        alpha (float): exponent of the distance. Defaults to 2, Wang & Isola's choice (squared distance).

    Returns:
        float: the mean over the ``n`` images.

    Raises:
        ValueError: ``z_a`` and ``z_b`` are not 2-D matrices of one shape.
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(f'alignment expects two (n, d) matrices of one shape, got {tuple(z_a.shape)} and '
                         f'{tuple(z_b.shape)}')
    a, b = F.normalize(z_a.double(), dim=1), F.normalize(z_b.double(), dim=1)
    return float((a - b).norm(dim=1).pow(alpha).mean())


def _uniformity_one(z: torch.Tensor, t: float) -> float:
    n = z.shape[0]
    if n < 2:
        raise ValueError('uniformity needs at least two images')
    z = F.normalize(z.double(), dim=1)
    sq = (2 - 2 * z @ z.t()).clamp_min(0)  # ||z_i - z_j||^2 of unit vectors
    iu = torch.triu_indices(n, n, offset=1)
    return float(torch.logsumexp(-t * sq[iu[0], iu[1]], dim=0) - math.log(iu.shape[1]))


def uniformity(z_a: torch.Tensor, z_b: torch.Tensor = None, t: float = 2.0) -> float:
    """Uniformity ``log E_{i<j} exp(-t ||z_i - z_j||^2)`` over the pairs of different images of one view.

    The projections are L2-normalised; with both views given, the result is the mean of the two views' values (as
    Wang & Isola's reference). Between -4t and 0 (collapsed).

    Args:
        z_a, z_b (Tensor): ``(n, d)`` projections of the first and of the second view, ``n >= 2``; each view is
            measured on its own (only pairs within one view count), so the two need not have the same ``n``.
            ``z_b`` defaults to None: ``z_a`` alone.
        t (float): scale of the Gaussian potential ``exp(-t ||z_i - z_j||^2)``. Defaults to 2, Wang & Isola's
            choice.

    Returns:
        float: the uniformity, in float64 arithmetic.

    Raises:
        ValueError: a view has fewer than two images.
    """
    values = [_uniformity_one(z, t) for z in (z_a, z_b) if z is not None]
    return sum(values) / len(values)


def contrast_accuracy(z_a: torch.Tensor, z_b: torch.Tensor) -> float:
    """Top-1 accuracy (%) of the contrastive task: how often the most similar projection is the positive.

    For each of the ``2n`` projections (both views, cosine similarity), whether the most similar of the other
    ``2n - 1`` is the other view of the same image.

    Args:
        z_a, z_b (Tensor): ``(n, d)`` projections of the first and of the second view; row ``i`` of both is the
            same image. L2-normalised here, in float64.

    Returns:
        float: the percentage (0-100) of the ``2n`` projections whose nearest neighbour is their positive.

    Raises:
        ValueError: ``z_a`` and ``z_b`` are not 2-D matrices of one shape.
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(f'contrast_accuracy expects two (n, d) matrices of one shape, got {tuple(z_a.shape)} and '
                         f'{tuple(z_b.shape)}')
    n = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b]).double(), dim=1)  # rows 0..n-1: view a, n..2n-1: view b
    sim = z @ z.t()
    sim.fill_diagonal_(float('-inf'))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return float((sim.argmax(dim=1) == positive).double().mean() * 100)
