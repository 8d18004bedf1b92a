"""NT-Xent against mmpretrain's SimCLR loss and against a brute-force reference."""
import math

import pytest
import torch

from mmsimclr.models.losses import NTXentLoss
from tools.benchmark.common import mmpretrain_simclr_loss


def brute_force(z, num_views, temperature):
    """Direct transcription of the paper's l(i, j), averaged over anchors and positives."""
    z = torch.nn.functional.normalize(z.double(), dim=1)
    total, count = 0.0, 0
    for i in range(z.shape[0]):
        denominator = sum(math.exp(float(z[i] @ z[k]) / temperature) for k in range(z.shape[0]) if k != i)
        for j in range(z.shape[0]):
            if j != i and j // num_views == i // num_views:
                total += -math.log(math.exp(float(z[i] @ z[j]) / temperature) / denominator)
                count += 1
    return total / count


@pytest.mark.parametrize('temperature', [0.1, 0.5])
def test_equals_mmpretrain_loss_and_gradient(temperature):
    torch.manual_seed(0)
    n, d = 64, 32
    v0, v1 = torch.randn(n, d), torch.randn(n, d)
    ref_views = [v0.clone().requires_grad_(), v1.clone().requires_grad_()]
    ref = mmpretrain_simclr_loss(temperature)(ref_views)
    ref.backward()

    ours_views = [v0.clone().requires_grad_(), v1.clone().requires_grad_()]
    z = torch.stack(ours_views, dim=1).flatten(0, 1)  # sample-major, as SimCLR.loss builds it
    ours = NTXentLoss(temperature)(z, num_views=2)
    ours.backward()

    assert abs(ours.item() - ref.item()) / ref.item() <= 1e-5
    for g_ours, g_ref in zip(ours_views, ref_views):
        assert torch.allclose(g_ours.grad, g_ref.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('num_views', [2, 3, 4])
def test_matches_paper_formula(num_views):
    torch.manual_seed(1)
    z = torch.randn(5 * num_views, 8)
    ours = NTXentLoss(temperature=0.2)(z, num_views=num_views).item()
    assert ours == pytest.approx(brute_force(z, num_views, 0.2), rel=1e-5)


def test_perfect_alignment_gives_lower_loss():
    torch.manual_seed(2)
    anchors = torch.randn(16, 8)
    aligned = torch.stack([anchors, anchors], 1).flatten(0, 1)
    random = torch.randn(32, 8)
    loss = NTXentLoss(0.1)
    assert loss(aligned) < loss(random)


@pytest.mark.parametrize('temperature', [0, -0.1, 'a'])
def test_rejects_bad_temperature(temperature):
    with pytest.raises(ValueError, match='temperature'):
        NTXentLoss(temperature)


def test_rejects_rows_not_divisible_by_views():
    with pytest.raises(ValueError, match='views'):
        NTXentLoss()(torch.randn(7, 4), num_views=2)
