"""L2-regularised multinomial logistic regression on frozen features, fit with L-BFGS, with the regularisation chosen
on held-out training data -- the linear transfer protocol of SimCLR (Appendix B.8.1, after Kornblith et al., 2019).

Model and objective, for features ``x_i`` (D,), labels ``y_i`` in ``[0, C)``, weights ``W`` (C, D), bias ``b`` (C,):

    p(c | x) = softmax(W x + b)_c
    L(W, b)  = (1 / N) sum_i -log p(y_i | x_i)  +  (lambda / 2) ||W||_F^2          (the bias is not penalised)

``L`` is strictly convex in ``W`` for ``lambda > 0``, so the minimiser is unique; scikit-learn's
``LogisticRegression(C=1 / (lambda N))`` minimises the same function times ``N C`` and finds the same ``W, b``.

Protocol (:func:`evaluate_transfer`): features are standardised with the training mean and standard deviation;
a stratified ``val_fraction`` of the training set is held out; each ``lambda`` of a log-spaced grid (the paper: 45
values in ``[1e-6, 1e5]``) is fit on the rest, from the strongest to the weakest regularisation, each warm-started
from the previous solution; the ``lambda`` with the best held-out top-1 (ties: the stronger one) is refit on the
whole training set and evaluated on the test set.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

PAPER_GRID = tuple(np.logspace(-6, 5, 45).tolist())  # 45 log-spaced values of lambda in [1e-6, 1e5]


@dataclass
class LogisticRegressionFit:
    """A fitted model: ``weight`` (C, D), ``bias`` (C,), the final objective value and the L-BFGS iterations."""
    weight: torch.Tensor
    bias: torch.Tensor
    loss: float
    iterations: int

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        """``(M, C)`` scores ``W x + b`` of ``feats`` (M, D)."""
        return feats.to(self.weight) @ self.weight.T + self.bias


def _check(feats: torch.Tensor, labels: torch.Tensor, what: str) -> None:
    if feats.dim() != 2 or labels.shape != (feats.shape[0], ):
        raise ValueError(f'{what}: expected features (N, D) and labels (N,), got {tuple(feats.shape)} and '
                         f'{tuple(labels.shape)}')
    if feats.shape[0] == 0:
        raise ValueError(f'{what}: no samples')


def fit_logistic_regression(feats: torch.Tensor, labels: torch.Tensor, l2: float, num_classes: Optional[int] = None,
                            max_iter: int = 1000, tol: float = 1e-6, init: Optional[LogisticRegressionFit] = None,
                            dtype: torch.dtype = torch.float64) -> LogisticRegressionFit:
    """Minimise ``L(W, b)`` of the module docstring with full-batch L-BFGS (strong Wolfe line search).

    Args:
        feats: ``(N, D)`` features (used as given; standardise them first, see :func:`standardize`).
        labels: ``(N,)`` integer labels in ``[0, num_classes)``.
        l2: ``lambda >= 0``.
        num_classes: ``C``; default ``max(labels) + 1``.
        max_iter: L-BFGS iterations at most.
        tol: stop when the largest gradient entry is below ``tol``.
        init: warm start from this fit (same ``C`` and ``D``).
        dtype: computation precision.
    """
    _check(feats, labels, 'fit_logistic_regression')
    if l2 < 0:
        raise ValueError(f'l2 must be >= 0, got {l2}')
    x = feats.to(dtype)
    y = labels.long().to(x.device)
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    if init is not None:
        w = init.weight.detach().to(x).clone().requires_grad_(True)
        b = init.bias.detach().to(x).clone().requires_grad_(True)
    else:
        w = torch.zeros(num_classes, x.shape[1], dtype=dtype, device=x.device, requires_grad=True)
        b = torch.zeros(num_classes, dtype=dtype, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                                  history_size=20, line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        loss = float(F.cross_entropy(x @ w.T + b, y) + 0.5 * l2 * (w * w).sum())
    iterations = int(optimizer.state[w].get('n_iter', 0))
    return LogisticRegressionFit(w.detach(), b.detach(), loss, iterations)


def standardize(train: torch.Tensor, *others: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """``(x - mean) / std`` with the per-dimension mean and std of ``train`` (N, D) (constant dimensions: std 1),
    applied to ``train`` and every tensor of ``others``."""
    mean = train.mean(0, keepdim=True)
    std = train.std(0, keepdim=True) if train.shape[0] > 1 else torch.ones_like(mean)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    return tuple((t - mean) / std for t in (train, ) + others)


def stratified_split(labels: torch.Tensor, val_fraction: float, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(fit, val)`` holding out ``round(val_fraction * n_c)`` images of each class ``c`` (at least one
    of every class with two or more images, never all of a class)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    rng = np.random.default_rng(seed)
    labels = labels.cpu().numpy()
    fit, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(max(int(round(val_fraction * len(idx))), 1), len(idx) - 1) if len(idx) > 1 else 0
        val.extend(idx[:n_val].tolist())
        fit.extend(idx[n_val:].tolist())
    if not val:
        raise ValueError('No class has two or more training images, so none can be held out to choose the '
                         'regularisation; pass a fixed l2 or more data')
    return torch.tensor(sorted(fit)), torch.tensor(sorted(val))


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Percentage of rows of ``logits`` (M, C) whose ``k`` highest scores include the label."""
    k = min(k, logits.shape[1])
    hits = (logits.topk(k, dim=1).indices == labels.long().to(logits.device)[:, None]).any(1)
    return float(hits.double().mean() * 100)


@dataclass
class TransferResult:
    """Test accuracies (%), the chosen ``l2`` and the held-out top-1 of every grid value."""
    top1: float
    top5: Optional[float]
    l2: float
    val_top1: Dict[float, float] = field(default_factory=dict)
    fit: Optional[LogisticRegressionFit] = None

    def as_dict(self) -> dict:
        return dict(top1=self.top1, top5=self.top5, l2=self.l2,
                    val_top1={f'{k:.6g}': v for k, v in self.val_top1.items()})


def select_l2(feats: torch.Tensor, labels: torch.Tensor, grid: Sequence[float] = PAPER_GRID,
              val_fraction: float = 0.2, seed: int = 0, num_classes: Optional[int] = None,
              **fit_kwargs) -> Tuple[float, Dict[float, float]]:
    """The ``lambda`` of ``grid`` with the best top-1 on a stratified held-out part of (already standardised)
    ``feats`` (N, D); returns it and ``{lambda: held-out top-1 %}``."""
    if not len(grid):
        raise ValueError('select_l2: the regularisation grid is empty')
    fit_idx, val_idx = stratified_split(labels, val_fraction, seed)
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    scores: Dict[float, float] = {}
    previous = None
    for l2 in sorted(grid, reverse=True):  # strongest first: each solution warm-starts the next, weaker one
        previous = fit_logistic_regression(feats[fit_idx], labels[fit_idx], l2, num_classes, init=previous,
                                           **fit_kwargs)
        scores[float(l2)] = topk_accuracy(previous.logits(feats[val_idx]), labels[val_idx])
    best = max(scores, key=lambda l2: (scores[l2], l2))  # ties: the stronger regularisation
    return best, scores


def evaluate_transfer(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                      test_labels: torch.Tensor, grid: Sequence[float] = PAPER_GRID, val_fraction: float = 0.2,
                      seed: int = 0, num_classes: Optional[int] = None, **fit_kwargs) -> TransferResult:
    """The whole protocol of the module docstring: standardise, choose ``lambda`` on held-out training data, refit
    on all of ``train_feats`` (N, D), report test top-1 and top-5 (None with fewer than 5 classes) on
    ``test_feats`` (M, D)."""
    _check(train_feats, train_labels, 'evaluate_transfer (train)')
    _check(test_feats, test_labels, 'evaluate_transfer (test)')
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f'Train and test features differ in width: {train_feats.shape[1]} vs {test_feats.shape[1]}')
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1 if num_classes is None else num_classes
    dtype = fit_kwargs.get('dtype', torch.float64)
    train, test = standardize(train_feats.to(dtype), test_feats.to(dtype))
    if len(grid) == 1:
        best, scores = float(grid[0]), {}
    else:
        best, scores = select_l2(train, train_labels, grid, val_fraction, seed, num_classes, **fit_kwargs)
    fit = fit_logistic_regression(train, train_labels, best, num_classes, **fit_kwargs)
    logits = fit.logits(test)
    top5 = topk_accuracy(logits, test_labels, 5) if num_classes >= 5 else None
    return TransferResult(topk_accuracy(logits, test_labels, 1), top5, best, scores, fit)


__all__: List[str] = ['PAPER_GRID', 'LogisticRegressionFit', 'TransferResult', 'evaluate_transfer',
                      'fit_logistic_regression', 'select_l2', 'standardize', 'stratified_split', 'topk_accuracy']
