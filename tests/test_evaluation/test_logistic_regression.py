"""Logistic regression for linear transfer: optimality, agreement with scikit-learn, accuracy, grid selection."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmsimclr.evaluation.logistic_regression import (PAPER_GRID, evaluate_transfer, fit_logistic_regression,
                                                     select_l2, standardize, stratified_split, topk_accuracy)


def blobs(n_per_class, num_classes=5, dim=16, spread=1.0, seed=0):
    """Gaussian classes around random centres at distance ~4 from each other; labels 0..C-1."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=g) * 3
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    feats = centres[labels] + spread * torch.randn(len(labels), dim, generator=g)
    return feats, labels


def test_paper_grid():
    assert len(PAPER_GRID) == 45 and PAPER_GRID[0] == pytest.approx(1e-6) and PAPER_GRID[-1] == pytest.approx(1e5)
    assert np.allclose(np.diff(np.log10(PAPER_GRID)), 11 / 44)


def test_fit_satisfies_the_optimality_condition():
    feats, labels = blobs(30, spread=3.0)
    x = standardize(feats.double())[0]
    l2 = 1e-2
    fit = fit_logistic_regression(x, labels, l2, tol=1e-10)
    # gradient of L at the optimum, written out: dL/dW = (P - Y)^T X / N + l2 W, dL/db = sum_i (P - Y)_i / N
    residual = F.softmax(fit.logits(x), 1) - F.one_hot(labels, 5).double()
    grad_w = residual.T @ x / len(x) + l2 * fit.weight
    grad_b = residual.mean(0)
    assert grad_w.abs().max() < 1e-6 and grad_b.abs().max() < 1e-6
    start = (0.2 - F.one_hot(labels, 5).double()).T @ x / len(x)  # dL/dW at W = 0, b = 0: far from optimal
    assert start.abs().max() > 0.1
    assert fit.iterations > 1


def test_agrees_with_scikit_learn():
    linear_model = pytest.importorskip('sklearn.linear_model')
    feats, labels = blobs(40, num_classes=4, dim=8, spread=2.5, seed=1)
    x = standardize(feats.double())[0]
    l2 = 0.05
    ours = fit_logistic_regression(x, labels, l2, tol=1e-10)
    ref = linear_model.LogisticRegression(C=1 / (l2 * len(x)), tol=1e-12, max_iter=10000).fit(x.numpy(),
                                                                                              labels.numpy())
    # softmax is invariant to adding a constant to every class, so compare probabilities and centred weights
    probs = F.softmax(ours.logits(x), 1).numpy()
    np.testing.assert_allclose(probs, ref.predict_proba(x.numpy()), atol=1e-5)
    np.testing.assert_allclose((ours.weight - ours.weight.mean(0)).numpy(), ref.coef_ - ref.coef_.mean(0),
                               atol=1e-4)


def test_separable_features_reach_high_accuracy():
    train_feats, train_labels = blobs(40, seed=2)
    test_feats, test_labels = blobs(40, seed=2)[0] + 0.5 * torch.randn(200, 16), blobs(40, seed=2)[1]
    result = evaluate_transfer(train_feats, train_labels, test_feats, test_labels, grid=np.logspace(-6, 2, 9))
    assert result.top1 >= 98 and result.top5 == 100
    assert result.l2 in [float(v) for v in np.logspace(-6, 2, 9)]
    assert len(result.val_top1) == 9


def test_chosen_regularisation_is_the_best_held_out_one():
    # imbalanced classes (60/15/15), few noisy samples in 50 dimensions: too little regularisation overfits the
    # noise, too much leaves only the (unpenalised) bias, i.e. the majority class; the best lambda is in between
    g = torch.Generator().manual_seed(2)
    labels = torch.tensor([0] * 60 + [1] * 15 + [2] * 15)
    feats = (torch.randn(3, 50, generator=g) * 3)[labels] + 6.0 * torch.randn(90, 50, generator=g)
    x = standardize(feats.double())[0]
    grid = [1e-6, 1e-4, 1e-2, 1e-1, 1.0, 10.0, 1e5]
    best, scores = select_l2(x, labels, grid, val_fraction=0.3, seed=0)
    assert set(scores) == set(grid) and best == max(grid, key=lambda l2: (scores[l2], l2))
    assert best not in (1e-6, 1e5) and scores[best] > max(scores[1e-6], scores[1e5]) + 5
    _, val = stratified_split(labels, 0.3, seed=0)
    assert scores[1e5] == pytest.approx(100 * float((labels[val] == 0).double().mean())), 'majority class'
    fit = fit_logistic_regression(x, labels, 1e5)
    assert fit.weight.abs().max() < 1e-3, 'lambda = 1e5 shrinks the weights to almost nothing'


def test_stratified_split_holds_out_every_class():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 1)
    fit, val = stratified_split(labels, 0.2, seed=0)
    assert sorted(torch.cat([fit, val]).tolist()) == list(range(16))
    assert torch.bincount(labels[val], minlength=3).tolist() == [2, 1, 0]
    assert stratified_split(labels, 0.2, seed=0)[1].tolist() == val.tolist()


def test_topk_and_errors():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
    assert topk_accuracy(logits, torch.tensor([2, 0]), 1) == 50 and topk_accuracy(logits, torch.tensor([2, 0]), 2) == 100
    with pytest.raises(ValueError, match='differ in width'):
        evaluate_transfer(torch.zeros(4, 3), torch.tensor([0, 1, 0, 1]), torch.zeros(2, 5), torch.tensor([0, 1]))
