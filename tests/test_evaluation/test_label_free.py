"""The label-free measures against direct numpy / scipy computations of their definitions."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from mmsimclr.evaluation.label_free import alignment, contrast_accuracy, rankme, uniformity


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def views():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 16))
    return base + 0.3 * rng.normal(size=base.shape), base + 0.3 * rng.normal(size=base.shape), rng.normal(size=(40, 24))


def test_rankme_is_the_exp_entropy_of_the_normalised_singular_values(views):
    h = views[2] @ np.diag(np.linspace(0.1, 3, 24))
    s = np.linalg.svd(h, compute_uv=False)
    p = s / s.sum() + 1e-7
    assert rankme(torch.from_numpy(h).float()) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-5)
    assert rankme(torch.ones(30, 8)) == pytest.approx(1.0, abs=1e-4)  # one direction: collapse
    assert rankme(torch.eye(8)) == pytest.approx(8.0, rel=1e-5)  # every direction used equally


def test_alignment_and_uniformity_follow_wang_and_isola(views):
    a, b = views[0], views[1]
    ua, ub = _unit(a), _unit(b)
    expected_align = np.mean([np.sum((ua[i] - ub[i])**2) for i in range(len(a))])
    assert alignment(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected_align, rel=1e-10)
    expected_unif = np.mean([np.log(np.mean(np.exp(-2 * pdist(u, 'sqeuclidean')))) for u in (ua, ub)])
    assert uniformity(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected_unif, rel=1e-10)
    assert uniformity(torch.ones(10, 4)) == pytest.approx(0.0, abs=1e-12)  # every projection identical


def test_contrast_accuracy_counts_the_positive_as_nearest_of_2n_minus_1(views):
    a, b = views[0], views[1]
    b[3] = -a[3]  # image 3: its views disagree
    z = _unit(np.concatenate([a, b]))
    n, hits = len(a), 0
    for i in range(2 * n):
        sims = [(z[i] @ z[j], j) for j in range(2 * n) if j != i]
        hits += max(sims)[1] == (i + n) % (2 * n)
    value = contrast_accuracy(torch.from_numpy(a), torch.from_numpy(b))
    assert value == pytest.approx(100 * hits / (2 * n))
    assert value < 100
    assert contrast_accuracy(torch.eye(6), torch.eye(6)) == 100.0
