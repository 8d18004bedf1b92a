"""GPU check: values vs a float64 CPU reference (PASS/FAIL), then speed and memory of mmsimclr vs mmpretrain.

Every speed figure of the benchmarks in one table, on one device.

    python tools/benchmark/gpu_check.py [--device cuda] [--budget-s 480] [--out FILE.md] [--quick]
                                        [--sections values nt-xent lars ...]

Sections (each guarded: an error is written in its row and the next section runs; one time budget for all: the
section running when it is spent is stopped and the remaining ones are skipped):

* ``values`` (first, and the only one with PASS / FAIL): each row runs a computation on ``--device`` and compares
  it with a float64 CPU reference on the same inputs and initial weights. Relative error of a tensor:
  ``||value - ref||_2 / ||ref||_2`` (both in float64); a row over several tensors reports the worst tensor (and the
  largest absolute element error). PASS when the relative error is at most the row's tolerance; FAIL otherwise (a
  NaN fails), ERROR if the check raised; any FAIL or ERROR makes the exit status 1. The checks:

  - ``NT-Xent`` plain and chunked (a ragged last chunk): loss and ``dL/dz`` of ``NTXentLoss`` vs the paper's Eq. 1
    written plainly with autograd in float64;
  - ``LARS``: two steps (the second through the momentum buffers) of our ``LARS`` on ResNet + neck parameters with
    ``SimCLROptimWrapperConstructor``'s groups vs mmpretrain's ``LARS`` in float64; compared: the updates
    ``w_after - w_before``;
  - ``GlobalBN`` at world size 2: two gloo processes each normalise half of a batch whose halves have very
    different statistics, as device tensors (CUDA tensors over gloo: NCCL refuses two ranks on one GPU), vs
    ``BatchNorm2d`` on the whole batch in one float64 process: outputs, input gradients, weight and bias gradients
    (sum of the ranks' local sums) and running statistics;
  - ``DDP``: the same 2 processes run SimCLR (CIFAR ResNet-18 + neck, ``GlobalBN``) under
    ``SimCLRDistributedDataParallel`` on half of the views each, vs one float64 process on all of them: loss (the
    mean of the ranks'), every parameter gradient, BN running statistics;
  - ``train step``: one ``model.train_step`` (``SelfSupDataPreprocessor`` on uint8 views, forward, NT-Xent, backward,
    LARS step) of SimCLR with a CIFAR ResNet-18 in fp32, in TF32 (CUDA only) and under our ``--amp``
    (``amp_optim_wrapper_cfg``: bf16, or fp16 + loss scaler below compute capability 8.0) vs the same step in
    float64: loss, parameter updates, BN running statistics. Initial weights: mmengine's init with the residual
    branches' last BN weights at 0.25 (``values_initial_state``). LARS at lr 4.8: updates of ~5e-3 |w|, large
    against fp32's rounding of the weights.

  Model-wide rows (gradients, updates) come in two: the median tensor and the worst tensor (a tensor whose
  reference is below 1 % of the model's RMS per element is measured against that floor). NT-Xent itself runs in
  float32 by design (also in the float64 references of DDP and train step: a 1e-7 floor, far below the tolerances).

  Tolerances (relative error; the measured values on a CPU are in ``VALUE_TOL``'s comments):

  ============================================  =======  =======  =============
  compared                                      fp32     tf32     bf16 / fp16
  ============================================  =======  =======  =============
  GlobalBN rows, NT-Xent loss                   1e-5
  NT-Xent dL/dz, LARS update                    1e-4
  ResNet step: loss, BN running stats           1e-4     1e-2     5e-2
  ResNet step: gradients / updates, median      5e-3     0.15     0.4
  ResNet step: gradients / updates, worst       5e-2     0.3      0.75
  ============================================  =======  =======  =============

  fp32 rows run with TF32 off (``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``
  False; torch's defaults are matmuls in fp32 and cuDNN convolutions in TF32, and mmengine changes neither); the tf32
  rows turn both on (a superset of what training gets by default). The ResNet gradient tolerances are wide because
  where rounding moves a ReLU input across 0 that element's gradient flips between 0 and its full value; bf16
  (8-bit mantissa) on a network at initialisation differs from float64 by ~0.2-0.3 per tensor, so its rows catch
  gross errors only (NaN / inf, a lost loss scale, a wrong sign or factor >= 2).

  The 2 processes start with 'fork' on a CPU (cheap) and 'spawn' on CUDA (CUDA is initialised in this process by
  then; a forked child cannot use it), ~10 s of imports per rank.
* ``nt-xent``: forward + backward of ``NTXentLoss`` (plain and chunked) vs mmpretrain's ``SimCLR.loss`` after the
  neck, time and extra peak memory (builders of ``loss.py``).
* ``lars``: ``optimizer.step()`` of our ``LARS`` vs mmpretrain's on ResNet + SimCLR-neck parameters (``lars.py``).
* ``train-step``: ``model.train_step`` of SimCLR ResNet-50 at 224 px (``train_step.py``), images/s and extra peak
  memory, fp32 and AMP. AMP is each project's ``--amp``: ours ``amp_optim_wrapper_cfg`` (bf16 without a loss
  scaler where the GPU has native bf16), mmpretrain's ``tools/train.py --amp`` = mmengine's ``AmpOptimWrapper``
  (float16, dynamic loss scaler; GPU only).
* ``host-syncs``: device->host synchronisations per train step, counted as the warnings that
  ``torch.cuda.set_sync_debug_mode('warn')`` raises (CUDA only); the JSON lists where they come from.
* ``augmentation``: images/s of the per-image CPU pipelines (mmpretrain's and ours, one thread) and of the batched
  path (one-thread decode + ``SimCLRDataPreprocessor`` on the device), plus the preprocessor alone
  (``augmentation.py``).
* ``global-bn``: forward + backward of ResNet + neck with ``GlobalBN`` (forced onto its global path) vs torch's
  ``SyncBatchNorm`` in a one-rank group (``global_bn.py``); SyncBatchNorm needs a GPU.
* ``compile``: ``torch.compile`` of ``train_step`` (what mmengine's ``cfg.compile`` does): images/s compiled vs
  eager and the first (compiling) call's time, ours then mmpretrain if the budget allows.

``--device cpu --quick`` runs the same sections at tiny sizes (ResNet-18, 16-64 px, small batches, few repeats;
compiling is skipped: it takes minutes on a CPU; add ``--threads 1`` on a busy machine); what needs CUDA reads
``n/a on cpu`` (the values: float32 on the CPU vs float64; CI runs ``--device cpu --quick --sections values``).
``--out FILE.md`` writes the values table and the speed table as Markdown with the device, versions and date, and
``FILE.json`` beside it. Exit status 1 if a section failed or a value check FAILed / raised.

mmsimclr and mmpretrain are imported as installed; the other benchmark modules are imported from this folder
(next to the script).
"""
import argparse
import copy
import datetime
import gc
import json
import math
import os
import os.path as osp
import platform
import signal
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from common import PeakMemory, interleaved_medians, sync

NA_CPU = 'n/a on cpu'
SECTIONS = ['values', 'nt-xent', 'lars', 'train-step', 'host-syncs', 'augmentation', 'global-bn', 'compile']

# sizes per mode: 'cuda' (the real check, one GPU), 'cpu' (same models, small batches), 'quick' (the CPU test)
SIZES = {
    'cuda': dict(loss_batches=[256, 1024, 4096], loss_chunk=1024, loss_repeats=10, lars_depth=50, lars_repeats=20,
                 depth=50, size=224, batch=128, train_repeats=10, train_warmup=3, sync_steps=3,
                 aug_images=64, aug_rounds=3, aug_pre_images=256, aug_pre_repeats=10,
                 gbn_depth=50, gbn_size=224, gbn_batch=64, gbn_repeats=5, compile_repeats=10,
                 val_loss_batch=1024, val_loss_chunk=768, val_lars_depth=50, val_size=32, val_batch=16,
                 val_ddp_size=32, val_ddp_batch=16),
    'cpu': dict(loss_batches=[256, 1024], loss_chunk=512, loss_repeats=3, lars_depth=50, lars_repeats=5,
                depth=50, size=224, batch=4, train_repeats=3, train_warmup=1, sync_steps=1,
                aug_images=16, aug_rounds=2, aug_pre_images=16, aug_pre_repeats=2,
                gbn_depth=50, gbn_size=224, gbn_batch=2, gbn_repeats=2, compile_repeats=3,
                val_loss_batch=256, val_loss_chunk=96, val_lars_depth=50, val_size=32, val_batch=8,
                val_ddp_size=32, val_ddp_batch=8),
    # quick: train steps at 32 px, as bf16 autocast on a CPU without AVX512-BF16 is ~10x slower than fp32
    'quick': dict(loss_batches=[64], loss_chunk=32, loss_repeats=2, lars_depth=18, lars_repeats=2,
                  depth=18, size=32, batch=2, train_repeats=1, train_warmup=1, sync_steps=1,
                  aug_images=4, aug_rounds=1, aug_pre_images=4, aug_pre_repeats=1,
                  gbn_depth=18, gbn_size=64, gbn_batch=2, gbn_repeats=1, compile_repeats=2,
                  val_loss_batch=64, val_loss_chunk=48, val_lars_depth=18, val_size=16, val_batch=4,
                  val_ddp_size=16, val_ddp_batch=4),
}


class BudgetSpent(BaseException):
    """Raised by the alarm when the time budget is spent (a BaseException: no ``except Exception`` swallows it,
    torch.compile's included)."""


class Context:
    """What the sections share: device, sizes, rows written so far, the deadline."""

    def __init__(self, device: torch.device, sizes: dict, quick: bool, deadline: float):
        self.device, self.sizes, self.quick, self.deadline = device, sizes, quick, deadline
        self.rows: List[dict] = []
        self.section = ''
        self.cache: dict = {}
        depth, size, batch = sizes['depth'], sizes['size'], sizes['batch']
        self.case = f'r{depth}-{size}px-b{batch}'
        import train_step
        train_step.CASES[self.case] = ('ResNet', depth, size, batch, 512 if depth < 50 else 2048, 0.1)

    @property
    def cuda(self) -> bool:
        return self.device.type == 'cuda'

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self, metric: str, precision: str, errors, tol: float, note: str = '') -> None:
        """One row of the ``values`` table: ``errors`` is ``(rel, abs, worst)`` from :func:`errors_of` (or a string:
        ``n/a ...``); PASS when the relative error is at most ``tol``."""
        if isinstance(errors, str):
            rel = abs_err = worst = None
            result = 'n/a'
            note = f'{errors}; {note}' if note else errors
        else:
            rel, abs_err, worst = errors
            result = 'PASS' if rel <= tol else 'FAIL'  # a NaN error fails
            if worst:
                note = f'worst: {worst}; {note}' if note else f'worst: {worst}'
        self.rows.append(dict(section=self.section, metric=metric, precision=precision, rel_err=rel,
                              abs_err=abs_err, tol=tol, result=result, note=note))

    def add(self, metric: str, ref, ours, note: str = '', **details) -> None:
        """One table row: ``ref`` / ``ours`` are numbers or explanatory strings (``n/a on cpu``...)."""
        ratio = ours / ref if _is_num(ref) and _is_num(ours) and ref else None
        self.rows.append(dict(section=self.section, metric=metric, ref=ref, ours=ours, ratio=ratio, note=note,
                              **details))


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def fmt(x) -> str:
    if x is None:
        return ''
    if not _is_num(x):
        return str(x)
    if abs(x) >= 1000:
        return f'{x:,.0f}'
    if abs(x) >= 10:
        return f'{x:.1f}'
    return f'{x:.3g}'


def peak_mb(fns: Dict[str, Callable[[], None]], device: torch.device) -> Dict[str, object]:
    """Extra peak memory (MiB) of one call of each function on CUDA (``common.PeakMemory``); ``n/a on cpu``
    elsewhere (the CPU figure needs a fresh process per measurement, see common.py)."""
    if device.type != 'cuda':
        return {name: NA_CPU for name in fns}
    out = {}
    for name, fn in fns.items():
        gc.collect()
        with PeakMemory(device) as pm:
            fn()
        out[name] = pm.extra / 2**20
    return out


# ---------------------------------------------------------------------------------------------------- values
# Tolerances on the relative error (module docstring) by what is compared and in which precision: fp32 with TF32
# off; tf32 = cuDNN convolutions and CUDA matmuls in TF32 (10-bit mantissa); bf16 = our --amp (autocast), also fp16
# (mmengine's AmpOptimWrapper with a loss scaler, what --amp gives a GPU below compute capability 8.0).
VALUE_TOL = {
    ('elementwise', 'fp32'): 1e-5,  # BN outputs, gradients and running statistics; NT-Xent loss
    ('nt-xent grad', 'fp32'): 1e-4,  # dL/dz: a softmax over 2N columns and two matmuls over 2N rows
    ('lars', 'fp32'): 1e-4,  # an update read back from fp32 weights (w_new - w_old cancels ~5e-3 |w|)
    # a ResNet-18 step: the loss and the BN running statistics ...
    ('forward', 'fp32'): 1e-4, ('forward', 'tf32'): 1e-2, ('forward', 'bf16'): 5e-2,
    # ... and the gradients / LARS updates of its 66 parameter tensors: the median tensor and the worst one. Where
    # rounding moves a ReLU input across 0, that element's gradient flips between 0 and its full value: measured
    # on a CPU in fp32 (16-32 px, 4x2-16x2 images, 3 input seeds), median up to 5.7e-4 and worst up to 3.9e-3
    # (without a flip: ~3e-6 and ~5e-5); under bf16 autocast median 0.19-0.26, worst 0.25-0.32; under fp16 autocast
    # (a bound for TF32, which rounds only the inputs of convolutions and matmuls) median 0.07, worst 0.09-0.11
    ('grad median', 'fp32'): 5e-3, ('grad median', 'tf32'): 0.15, ('grad median', 'bf16'): 0.4,
    ('grad worst', 'fp32'): 5e-2, ('grad worst', 'tf32'): 0.3, ('grad worst', 'bf16'): 0.75,
}
# model-wide rows (gradients, updates): a tensor whose reference is smaller than this fraction of the model's RMS
# size per element is measured against that floor (e.g. the gradient of the bias of a BN followed by a convolution
# and another BN cancels to almost nothing: its relative error is all rounding)
FLOOR = 1e-2


def _each_error(pairs: Dict[str, tuple], floor: float = 0.0) -> List[tuple]:
    """``(relative error, max absolute error, name)`` of each named ``(value, reference)`` pair (module docstring);
    with ``floor``, the denominator is at least ``floor`` x the RMS of all references x sqrt(numel)."""
    cast = {name: tuple(torch.as_tensor(t).detach().to('cpu', torch.float64) for t in pair)
            for name, pair in pairs.items()}
    rms = 0.0
    if floor:
        total = sum(float(r.square().sum()) for _, r in cast.values())
        rms = math.sqrt(total / max(1, sum(r.numel() for _, r in cast.values())))
    out = []
    for name, (v, r) in cast.items():
        if v.shape != r.shape:
            raise ValueError(f'{name}: shape {tuple(v.shape)} vs reference {tuple(r.shape)}')
        d = v - r
        num = float(d.norm())
        den = max(float(r.norm()), floor * rms * math.sqrt(r.numel()))
        rel = math.nan if math.isnan(num) else num / den if den > 0 else 0.0 if num == 0 else math.inf
        abs_err = math.nan if math.isnan(num) else float(d.abs().max()) if d.numel() else 0.0
        out.append((rel, abs_err, name))
    return out


def _worse(x: float, y: float) -> bool:
    """x is worse than y (NaN worst of all)."""
    return not math.isnan(y) and (math.isnan(x) or x > y)


def errors_of(pairs: Dict[str, tuple], floor: float = 0.0) -> tuple:
    """``(max relative error, max absolute error, name of the worst)`` over named ``(value, reference)`` pairs of
    tensors (or numbers): the relative error of a pair is ``||value - ref||_2 / ||ref||_2`` in float64 on the CPU
    (0 when both are zero; ``floor``: see ``FLOOR``); a NaN anywhere is the worst. The name is '' for one pair."""
    rel_max, abs_max, worst = 0.0, 0.0, ''
    for rel, abs_err, name in _each_error(pairs, floor):
        if _worse(rel, rel_max):
            rel_max, worst = rel, name
        if _worse(abs_err, abs_max):
            abs_max = abs_err
    return rel_max, abs_max, worst if len(pairs) > 1 else ''


def median_error(pairs: Dict[str, tuple], floor: float = 0.0) -> float:
    return statistics.median(rel for rel, _, _ in _each_error(pairs, floor))


@contextmanager
def tf32_mode(enabled: bool):
    """TF32 for cuDNN convolutions and CUDA matmuls on or off inside, restored after. The legacy flags
    (``allow_tf32``), as most code sets them: torch 2.14 refuses to read them after a mix with the new
    ``fp32_precision`` API. torch's defaults: cuDNN convolutions in TF32, matmuls in fp32 (mmengine changes neither).
    No effect on a CPU."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def nt_xent_reference(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """The paper's Eq. 1 for two views, rows sample-major (rows 2k and 2k + 1 are a positive pair), written plainly
    with autograd: the oracle of the ``values`` NT-Xent rows (run in float64)."""
    zn = F.normalize(z, dim=1)
    s = (zn @ zn.t() / temperature).masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float('-inf'))
    rows = torch.arange(len(z), device=z.device)
    return (torch.logsumexp(s, dim=1) - s[rows, rows ^ 1]).mean()


def values_nt_xent(ctx: Context) -> None:
    from mmsimclr.models.losses import NTXentLoss
    s, dev, tau = ctx.sizes, ctx.device, 0.1
    n, chunk = s['val_loss_batch'], s['val_loss_chunk']
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2 * n, 128, generator=g)
    z[1::2] = z[0::2] + 2 * z[1::2]  # positives closer than negatives, as after some training
    z64 = z.double().requires_grad_()
    ref = nt_xent_reference(z64, tau)
    ref.backward()
    for label, chunk_size in (('plain', None), (f'chunked ({chunk} rows)', chunk)):
        zd = z.to(dev, copy=True).requires_grad_()
        with tf32_mode(False):
            loss = NTXentLoss(tau, chunk_size=chunk_size)(zd, num_views=2)
            loss.backward()
        tag = f'NT-Xent {label}, {2 * n} rows, d=128, tau={tau}'
        ctx.check(f'{tag}: loss', 'fp32', errors_of({'loss': (loss, ref)}), VALUE_TOL['elementwise', 'fp32'])
        ctx.check(f'{tag}: dL/dz', 'fp32', errors_of({'dL/dz': (zd.grad, z64.grad)}), VALUE_TOL['nt-xent grad', 'fp32'],
                  'ref: Eq. 1 with autograd, float64 cpu')


def values_lars(ctx: Context) -> None:
    import lars as lars_bench
    from mmpretrain.engine.optimizers import LARS as MMPretrainLARS

    from mmsimclr.engine.optimizers import LARS
    dev, depth = ctx.device, ctx.sizes['val_lars_depth']
    torch.manual_seed(0)
    model = lars_bench.build_model(depth)
    names = {id(p): k for k, p in model.named_parameters()}
    groups = lars_bench.param_groups(model)  # SimCLROptimWrapperConstructor's groups (lars_exclude for norm/bias)

    def copy_groups(device, dtype):
        return [dict(grp, params=[p.detach().to(device, dtype).clone() for p in grp['params']]) for grp in groups]

    kwargs = dict(lr=4.8, momentum=0.9, weight_decay=1e-6)
    dev_groups, ref_groups = copy_groups(dev, torch.float32), copy_groups('cpu', torch.float64)
    ours, ref = LARS(dev_groups, **kwargs), MMPretrainLARS(ref_groups, **kwargs)
    keys = [names[id(p)] for grp in groups for p in grp['params']]
    dev_params = [p for grp in dev_groups for p in grp['params']]
    ref_params = [p for grp in ref_groups for p in grp['params']]
    before = [p.clone() for p in ref_params]
    gen = torch.Generator().manual_seed(2)
    for _ in range(2):  # the second step updates the momentum buffers made by the first
        for pd, pr in zip(dev_params, ref_params):
            grad = torch.randn(pd.shape, generator=gen) * 1e-3
            pd.grad, pr.grad = grad.to(dev), grad.double()
        ours.step()
        ref.step()
    pairs = {k: (pd.double().cpu() - b, pr - b) for k, pd, pr, b in zip(keys, dev_params, ref_params, before)}
    ctx.check(f'LARS, 2 steps on ResNet-{depth} + neck ({len(keys)} tensors): update', 'fp32', errors_of(pairs),
              VALUE_TOL['lars', 'fp32'], 'ref: mmpretrain LARS, float64 cpu; lr 4.8, momentum 0.9, wd 1e-6')


def values_model_cfg(norm: str, neck_norm: str) -> dict:
    """SimCLR with a CIFAR ResNet-18 for the values (initial weights: :func:`values_initial_state`)."""
    import train_step
    return dict(type='mmsimclr.SimCLR',
                data_preprocessor=dict(type='mmpretrain.SelfSupDataPreprocessor', mean=train_step.MEAN,
                                       std=train_step.STD, to_rgb=True),
                backbone=dict(type='mmpretrain.ResNet_CIFAR', depth=18, out_indices=(3, ), norm_cfg=dict(type=norm),
                              zero_init_residual=True),
                neck=dict(type='mmsimclr.NonLinearNeck', in_channels=512, hid_channels=512, out_channels=128,
                          norm_cfg=dict(type=neck_norm)),
                head=dict(type='mmsimclr.ContrastiveHead', temperature=0.2))


def _build_model(cfg: dict):
    from mmengine.registry import DefaultScope

    from mmsimclr.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmsimclr'):
        return MODELS.build(cfg)


RESIDUAL_BN_WEIGHT = 0.25


def values_initial_state(cfg: dict) -> dict:
    """The values' initial weights: mmengine's ``init_weights`` (Kaiming convolutions; the last BN of each residual
    branch at 0, ``zero_init_residual``), then those BN weights set to 0.25, so that every convolution gets a gradient
    and the network is about as well conditioned as early in training. Measured on a CPU (16 images of 16 px,
    worst parameter gradient vs float64): with those weights at 1.0 the gradients of the first layers differ by
    up to 1.3e-3 in fp32, 0.15 under fp16 and 0.46 under bf16 autocast; at 0.25 by 2.3e-6, 0.09 and 0.23."""
    torch.manual_seed(0)
    model = _build_model(cfg)
    model.init_weights()
    with torch.no_grad():
        for name, module in model.backbone.named_modules():
            if name.endswith('.bn2'):  # BasicBlock's last norm
                module.weight.fill_(RESIDUAL_BN_WEIGHT)
    return {k: v.clone() for k, v in model.state_dict().items()}


VALUE_OPTIM = dict(type='OptimWrapper', optimizer=dict(type='LARS', lr=4.8, momentum=0.9, weight_decay=1e-6),
                   constructor='SimCLROptimWrapperConstructor')


def _one_train_step(cfg: dict, state: dict, views: List[torch.Tensor], device, dtype, wrapper_cfg: dict,
                    tf32: bool = False) -> dict:
    """One ``model.train_step`` from ``state``: loss, parameter updates and BN running statistics (float64 cpu).
    With a loss scaler (fp16), a step the scaler skips (inf gradients at the initial scale 2**16: the first steps of
    fp16 training) leaves the weights as they were and is run again on the same batch, up to 8 times; ``skips``
    counts them (the BN running statistics then saw ``skips + 1`` forward passes)."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    model = _build_model(cfg)
    model.load_state_dict(state)
    model.to(device, dtype).train()
    with DefaultScope.overwrite_default_scope('mmsimclr'):
        wrapper = build_optim_wrapper(model, wrapper_cfg)
    before = {k: p.detach().to('cpu', torch.float64).clone() for k, p in model.named_parameters()}
    scaler = getattr(wrapper, 'loss_scaler', None)
    first_scale = scale = scaler.get_scale() if scaler is not None else None
    skips = 0
    with tf32_mode(tf32):
        for _ in range(8):
            log_vars = model.train_step(dict(inputs=[v.to(device) for v in views], data_samples=None), wrapper)
            if scaler is None or scaler.get_scale() >= scale:
                break
            skips, scale = skips + 1, scaler.get_scale()
    return dict(loss=torch.as_tensor(log_vars['loss']).detach().to('cpu', torch.float64),
                update={k: p.detach().to('cpu', torch.float64) - before[k] for k, p in model.named_parameters()},
                stats={k: v.detach().to('cpu', torch.float64) for k, v in model.state_dict().items()
                       if 'running_' in k},
                wrapper=type(wrapper).__name__, skips=skips, skipped=skips == 8,
                scale=(first_scale, scaler.get_scale()) if scaler is not None else None)


def values_amp_cfg(ctx: Context) -> dict:
    """Our ``--amp`` for this device: ``amp_optim_wrapper_cfg`` (bf16, or fp16 + loss scaler below compute
    capability 8.0) on CUDA; bf16 on a CPU."""
    from mmsimclr.engine.optimizers import amp_optim_wrapper_cfg
    if ctx.cuda:
        return amp_optim_wrapper_cfg(VALUE_OPTIM, ctx.device.index)
    return dict(VALUE_OPTIM, type='BF16OptimWrapper')


def values_train_step(ctx: Context) -> None:
    s, dev = ctx.sizes, ctx.device
    batch, size = s['val_batch'], s['val_size']
    cfg = values_model_cfg('BN', 'BN1d')
    state = values_initial_state(cfg)
    gen = torch.Generator().manual_seed(3)
    views = [torch.randint(0, 256, (batch, 3, size, size), generator=gen, dtype=torch.uint8) for _ in range(2)]
    ref = _one_train_step(cfg, state, views, 'cpu', torch.float64, VALUE_OPTIM)
    runs = [('fp32', VALUE_OPTIM, False), ('tf32', VALUE_OPTIM, True), ('amp', values_amp_cfg(ctx), False)]
    tag = f'train step, ResNet-18 CIFAR {size} px, {batch}x2 images, LARS'
    for precision, wrapper_cfg, tf32 in runs:
        if precision == 'tf32' and not ctx.cuda:
            for what, kind in (('loss', 'forward'), ('update, median tensor', 'grad median'),
                               ('update, worst tensor', 'grad worst'), ('BN running stats', 'forward')):
                ctx.check(f'{tag}: {what}', 'tf32', NA_CPU, VALUE_TOL[kind, 'tf32'])
            continue
        out = _one_train_step(cfg, state, views, dev, torch.float32, wrapper_cfg, tf32)
        if precision == 'amp':
            precision = 'fp16' if out['wrapper'] == 'AmpOptimWrapper' else 'bf16'
        tol = {kind: VALUE_TOL[kind, 'bf16' if precision == 'fp16' else precision]
               for kind in ('forward', 'grad median', 'grad worst')}
        note = out['wrapper'] + (f'; loss scale {out["scale"][0]:g} -> {out["scale"][1]:g}, {out["skips"]} steps '
                                 'skipped (inf gradients) before this one' if out['scale'] else '')
        ctx.check(f'{tag}: loss', precision, errors_of({'loss': (out['loss'], ref['loss'])}), tol['forward'], note)
        if out['skipped']:  # inf/NaN gradients down to a scale of 2**8: a failure
            for what in ('median tensor', 'worst tensor'):
                ctx.check(f'{tag}: update, {what}', precision, (math.inf, math.inf, ''), tol['grad worst'],
                          f'{note}: the loss scaler skipped every step')
        else:
            check_model_wide(ctx, f'{tag}: update', precision,
                             {k: (v, ref['update'][k]) for k, v in out['update'].items()},
                             tol, 'parameters after the step - before')
        ctx.check(f'{tag}: BN running stats', precision,
                  errors_of({k: (v, ref['stats'][k]) for k, v in out['stats'].items()}) if not out['skips'] else
                  f'n/a: {out["skips"] + 1} forward passes (skipped steps) updated them', tol['forward'])


def check_model_wide(ctx: Context, metric: str, precision: str, pairs: Dict[str, tuple], tol: Dict[str, float],
                     note: str = '') -> None:
    """Two rows for the gradients or updates of a whole model: the median tensor and the worst one (``FLOOR``)."""
    worst = errors_of(pairs, FLOOR)
    ctx.check(f'{metric}, median tensor', precision, (median_error(pairs, FLOOR), worst[1], ''), tol['grad median'],
              (f'{note}; ' if note else '') + f'{len(pairs)} tensors')
    ctx.check(f'{metric}, worst tensor', precision, worst, tol['grad worst'])


def _two_rank_worker(rank: int, world_size: int, device_name: str, tmp: str, cfg: dict) -> None:
    """One of the 2 gloo ranks of ``values_two_ranks``: GlobalBN on its half of a batch, then the gradient of a SimCLR
    model under ``SimCLRDistributedDataParallel`` on its half of the views; writes ``rank{rank}.pth``."""
    import datetime

    import torch.distributed as dist
    device = torch.device(device_name)
    if device.type == 'cuda':
        device = torch.device('cuda', device.index or 0)
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(1)  # two ranks on a shared CPU
    # torch 2.14's DDP warns that broadcast_buffers is deprecated; False is what is meant here (no sync at init)
    warnings.filterwarnings('ignore', message='.*broadcast_buffers.*', category=FutureWarning)
    dist.init_process_group('gloo', init_method='file://' + osp.join(tmp, 'store'), rank=rank,
                            world_size=world_size, timeout=datetime.timedelta(seconds=120))
    try:
        from mmsimclr.engine import SimCLRDistributedDataParallel
        from mmsimclr.models.utils import GlobalBatchNorm
        from mmsimclr.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        inputs = torch.load(osp.join(tmp, 'inputs.pth'), weights_only=True)
        out = {}
        with tf32_mode(False):
            x = inputs['bn_x']
            n = x.shape[0] // world_size
            bn = GlobalBatchNorm(x.shape[1])
            bn.load_state_dict(inputs['bn_state'])
            bn.to(device).train()
            local = x[rank * n:(rank + 1) * n].to(device, copy=True).requires_grad_()
            y = bn(local)
            y.backward(inputs['bn_upstream'][rank * n:(rank + 1) * n].to(device))
            out['bn'] = dict(y=y.detach().cpu(), grad=local.grad.cpu(), weight_grad=bn.weight.grad.cpu(),
                             bias_grad=bn.bias.grad.cpu(), running_mean=bn.running_mean.cpu(),
                             running_var=bn.running_var.cpu())

            model = _build_model(cfg)
            model.load_state_dict(inputs['model_state'])
            model.to(device).train()
            views = inputs['views']  # (V, N, 3, H, W)
            n = views.shape[1] // world_size
            kwargs = dict(device_ids=[device.index]) if device.type == 'cuda' else {}
            ddp = SimCLRDistributedDataParallel(model, broadcast_buffers=False, **kwargs)
            loss = ddp([v[rank * n:(rank + 1) * n].to(device) for v in views], None, mode='loss')['loss']
            loss.backward()
            out['ddp'] = dict(loss=loss.detach().cpu(),
                              grads={k: p.grad.cpu() for k, p in model.named_parameters()},
                              stats={k: v.cpu() for k, v in model.state_dict().items() if 'running_' in k})
        torch.save(out, osp.join(tmp, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def run_two_ranks(fn: Callable, args: tuple, device: torch.device, timeout_s: float,
                  while_running: Callable[[], None] = lambda: None) -> None:
    """``fn(rank, *args)`` in 2 processes; ``while_running()`` runs here meanwhile. Start method: 'fork' on a CPU
    (no re-import: ~0.1 s a rank instead of ~9 s of imports); 'spawn' on CUDA, because main() has initialised CUDA in
    this process by then (set_device, device name) and a forked child cannot use CUDA ('Cannot re-initialize CUDA in
    forked subprocess'). Ranks still alive when this returns or raises (budget spent, timeout) are terminated."""
    import torch.multiprocessing as mp
    procs = mp.start_processes(fn, args=args, nprocs=2, join=False,
                               start_method='spawn' if device.type == 'cuda' else 'fork')
    try:
        while_running()
        deadline = time.monotonic() + timeout_s
        while not procs.join(timeout=1):
            if time.monotonic() > deadline:
                raise TimeoutError(f'the 2 ranks did not finish in {timeout_s:.0f} s')
    finally:
        for p in procs.processes:
            if p.is_alive():
                p.terminate()
                p.join(5)


def values_two_ranks(ctx: Context) -> None:
    s, dev, world = ctx.sizes, ctx.device, 2
    g = torch.Generator().manual_seed(4)
    # GlobalBN: the two halves of the batch have very different statistics (each rank alone would normalise wrongly)
    c = 8
    x = torch.randn(16, c, 5, 5, generator=g) * 3 + torch.linspace(-2, 2, c)[None, :, None, None]
    x[:8] += 5
    upstream = torch.randn(x.shape, generator=g)
    bn_ref = torch.nn.BatchNorm2d(c)
    with torch.no_grad():
        bn_ref.weight.copy_(torch.rand(c, generator=g) + 0.5)
        bn_ref.bias.copy_(torch.rand(c, generator=g) * 2 - 1)
    bn_state = {k: v.clone() for k, v in bn_ref.state_dict().items()}
    # DDP: SimCLR with GlobalBN, each rank half of the views
    cfg = values_model_cfg('GlobalBN', 'GlobalBN')
    state = values_initial_state(cfg)
    size, batch = s['val_ddp_size'], s['val_ddp_batch']
    views = torch.randn(2, batch, 3, size, size, generator=g)
    refs = {}

    def references():  # float64 cpu, one process, the whole batch (GlobalBN without a group is BatchNorm)
        bn = bn_ref.double()
        xr = x.double().requires_grad_()
        y = bn(xr)
        y.backward(upstream.double())
        refs['bn'] = dict(y=y.detach(), grad=xr.grad, weight_grad=bn.weight.grad, bias_grad=bn.bias.grad,
                          running_mean=bn.running_mean, running_var=bn.running_var)
        model = _build_model(cfg)
        model.load_state_dict(state)
        model.double().train()
        loss = model.loss(list(views.double()), None)['loss']
        loss.backward()
        refs['ddp'] = dict(loss=loss.detach(), grads={k: p.grad for k, p in model.named_parameters()},
                           stats={k: v for k, v in model.state_dict().items() if 'running_' in k})

    with tempfile.TemporaryDirectory() as tmp:
        torch.save(dict(bn_x=x, bn_upstream=upstream, bn_state=bn_state, model_state=state, views=views),
                   osp.join(tmp, 'inputs.pth'))
        run_two_ranks(_two_rank_worker, (world, str(dev), tmp, cfg), dev, min(300.0, max(ctx.remaining(), 1.0)),
                      references)
        ranks = [torch.load(osp.join(tmp, f'rank{r}.pth'), weights_only=True) for r in range(world)]
    bn, ref = [r['bn'] for r in ranks], refs['bn']
    tag = f'GlobalBN, {world} gloo ranks x {x.shape[0] // world} of {tuple(x.shape)}'
    note = 'ref: BatchNorm2d on the whole batch, float64 cpu'
    tol = VALUE_TOL['elementwise', 'fp32']
    ctx.check(f'{tag}: output', 'fp32', errors_of({'y': (torch.cat([r['y'] for r in bn]), ref['y'])}), tol, note)
    ctx.check(f'{tag}: input grad', 'fp32', errors_of({'dx': (torch.cat([r['grad'] for r in bn]), ref['grad'])}),
              tol)
    ctx.check(f'{tag}: weight and bias grads', 'fp32',
              errors_of({'weight': (sum(r['weight_grad'] for r in bn), ref['weight_grad']),
                         'bias': (sum(r['bias_grad'] for r in bn), ref['bias_grad'])}), tol,
              'sum of the ranks\' local sums (DDP adds them up)')
    ctx.check(f'{tag}: running mean and var', 'fp32',
              errors_of({f'rank {i} {k}': (r[k], ref[k]) for i, r in enumerate(bn)
                         for k in ('running_mean', 'running_var')}), tol)
    ddp, ref = [r['ddp'] for r in ranks], refs['ddp']
    tag = f'DDP 2 gloo ranks vs 1 process, SimCLR ResNet-18 CIFAR + GlobalBN, {size} px, {batch}x2 images'
    ctx.check(f'{tag}: loss', 'fp32', errors_of({'loss': (sum(r['loss'] for r in ddp) / world, ref['loss'])}),
              VALUE_TOL['forward', 'fp32'], 'mean of the ranks\' losses; ref: 1 process, float64 cpu')
    # DDP leaves the same averaged gradients on every rank: rank 0's are compared, rank 1's too if they differ
    same = all(torch.equal(v, ddp[0]['grads'][k]) for k, v in ddp[1]['grads'].items())
    check_model_wide(ctx, f'{tag}: gradients', 'fp32',
                     {f'rank {i} {k}': (v, ref['grads'][k]) for i, r in enumerate(ddp[:1] if same else ddp)
                      for k, v in r['grads'].items()},
                     {kind: VALUE_TOL[kind, 'fp32'] for kind in ('grad median', 'grad worst')},
                     'rank 1 = rank 0' if same else 'rank 1 != rank 0')
    ctx.check(f'{tag}: GlobalBN running stats', 'fp32',
              errors_of({f'rank {i} {k}': (v, ref['stats'][k]) for i, r in enumerate(ddp)
                         for k, v in r['stats'].items()}), VALUE_TOL['forward', 'fp32'])


VALUE_CHECKS = [('NT-Xent', values_nt_xent), ('LARS', values_lars), ('2 ranks', values_two_ranks),
                ('train step', values_train_step)]


def section_values(ctx: Context) -> None:
    """Each check guarded: an exception is an ERROR row (a failure) and the next check runs."""
    for name, fn in VALUE_CHECKS:
        try:
            fn(ctx)
        except Exception as e:  # noqa: BLE001  (written in the table; the next check runs)
            traceback.print_exc()
            message = f'{type(e).__name__}: {e}'.strip().splitlines()[-1][:300]
            ctx.rows.append(dict(section=ctx.section, metric=f'{name}: -', precision='', rel_err=None, abs_err=None,
                                 tol=None, result='ERROR', note=message))


# ---------------------------------------------------------------------------------------------------- sections
def section_nt_xent(ctx: Context) -> None:
    import loss
    s, dev = ctx.sizes, ctx.device
    chunk, impls = s['loss_chunk'], ['mmpretrain', 'ours', 'ours_chunked']
    for batch in s['loss_batches']:
        views = loss.make_inputs(batch, 128, dev)
        fns = {i: loss.build(i, 0.1, chunk, dev) for i in impls}
        steps = {i: (lambda f=f: loss.run_once(f, views)) for i, f in fns.items()}
        t = interleaved_medians(steps, repeats=s['loss_repeats'], warmup=1, device=dev)
        mem = peak_mb(steps, dev)
        tag = f'batch {batch} ({2 * batch} rows), d=128'
        ctx.add(f'{tag}: fwd+bwd ms', t['mmpretrain'] * 1e3, t['ours'] * 1e3, 'ref: mmpretrain SimCLR.loss')
        ctx.add(f'{tag}: fwd+bwd ms, ours chunked ({chunk})', t['mmpretrain'] * 1e3, t['ours_chunked'] * 1e3)
        ctx.add(f'{tag}: extra peak MiB', mem['mmpretrain'], mem['ours'])
        ctx.add(f'{tag}: extra peak MiB, ours chunked', mem['mmpretrain'], mem['ours_chunked'])


def section_lars(ctx: Context) -> None:
    import lars
    s, dev, depth = ctx.sizes, ctx.device, ctx.sizes['lars_depth']
    opts, n = {}, 0
    for impl in ('mmpretrain', 'ours'):
        model, opts[impl] = lars.setup(depth, dev, impl)
        n = sum(p.numel() for p in model.parameters())
    t = interleaved_medians({i: o.step for i, o in opts.items()}, repeats=s['lars_repeats'], warmup=2, device=dev)
    ctx.add(f'ResNet-{depth} + neck ({n / 1e6:.1f}M params): step ms', t['mmpretrain'] * 1e3, t['ours'] * 1e3,
            'ref: mmpretrain LARS')


def build_train_variants(ctx: Context) -> Dict[tuple, object]:
    """``{(precision, impl): step}`` for fp32 and AMP of mmpretrain and ours, same initial weights and batch; a
    string (why) in place of a variant that cannot run on this device or failed to build."""
    import train_step
    dev = ctx.device
    torch.manual_seed(0)
    ref_model, ref_wrapper, ref_step = train_step.build('mmpretrain', ctx.case, dev)
    data = train_step.make_data(ctx.case, dev)
    fns = {}

    def add(key, wrapper, step):
        fns[key] = lambda: step(copy.copy(data), wrapper)
        fns[key].wrapper_type = type(wrapper).__name__

    add(('fp32', 'mmpretrain'), ref_wrapper, ref_step)
    variants = [('fp32', 'ours', 'mmsimclr', False), ('amp', 'mmpretrain', 'mmpretrain', 'mmengine'),
                ('amp', 'ours', 'mmsimclr', True)]
    for precision, impl, scope, amp in variants:
        if amp == 'mmengine' and not ctx.cuda:
            fns[(precision, impl)] = 'n/a on cpu (AmpOptimWrapper needs a GPU)'
            continue
        try:
            _, wrapper, step = train_step.build(scope, ctx.case, dev, amp=amp, init_from=ref_model)
            add((precision, impl), wrapper, step)
        except Exception as e:  # noqa: BLE001  (written in the table)
            fns[(precision, impl)] = f'error: {type(e).__name__}: {e}'[:200]
    return fns


def section_train_step(ctx: Context) -> None:
    s, dev = ctx.sizes, ctx.device
    fns = build_train_variants(ctx)
    ctx.cache['train_variants'] = fns
    runnable = {f'{p}/{i}': f for (p, i), f in fns.items() if callable(f)}
    t = interleaved_medians(runnable, repeats=s['train_repeats'], warmup=s['train_warmup'], device=dev)
    mem = peak_mb(runnable, dev)
    images = 2 * s['batch']
    label = f'ResNet-{s["depth"]} {s["size"]} px, {images} images/step'
    for precision in ('fp32', 'amp'):
        keys = {i: f'{precision}/{i}' for i in ('mmpretrain', 'ours')}
        ips = {i: images / t[k] if k in t else fns[(precision, i)] for i, k in keys.items()}
        mb = {i: mem[k] if k in mem else fns[(precision, i)] for i, k in keys.items()}
        note = 'ref: mmpretrain SimCLR + its LARS'
        if precision == 'amp':
            ours = fns[('amp', 'ours')]
            note = (f'ours: {getattr(ours, "wrapper_type", "-")}; mmpretrain: AmpOptimWrapper fp16 + dynamic loss '
                    'scaler (its tools/train.py --amp)')
        ctx.add(f'{label}, {precision}: images/s', ips['mmpretrain'], ips['ours'], note)
        ctx.add(f'{label}, {precision}: extra peak MiB', mb['mmpretrain'], mb['ours'])


def count_syncs(fn: Callable[[], None], steps: int, device: torch.device):
    """(syncs per call, Counter of 'file:line' of the Python code that made them) under sync debug mode 'warn'."""
    sync(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            for _ in range(steps):
                fn()
        finally:
            torch.cuda.set_sync_debug_mode('default')
    hits = [w for w in caught if 'synchroniz' in str(w.message)]
    return len(hits) / steps, Counter(f'{osp.relpath(w.filename) if w.filename else "?"}:{w.lineno}' for w in hits)


def section_host_syncs(ctx: Context) -> None:
    s = ctx.sizes
    if not ctx.cuda:
        for precision in ('fp32', 'amp'):
            ctx.add(f'train step, {precision}: host syncs per step', NA_CPU, NA_CPU,
                    'torch.cuda.set_sync_debug_mode counts CUDA synchronisations only')
        return
    fns = ctx.cache.pop('train_variants', None) or build_train_variants(ctx)
    for precision in ('fp32', 'amp'):
        counts, where = {}, {}
        for impl in ('mmpretrain', 'ours'):
            fn = fns[(precision, impl)]
            if not callable(fn):
                counts[impl], where[impl] = fn, Counter()
                continue
            fn()  # warm: lazily made state (momentum buffers, loss scaler) out of the count
            counts[impl], where[impl] = count_syncs(fn, s['sync_steps'], ctx.device)
        top = ', '.join(f'{k} x{v}' for k, v in where['ours'].most_common(3))
        ctx.add(f'train step, {precision}: host syncs per step', counts['mmpretrain'], counts['ours'],
                f'ours from: {top}' if top else 'ours: none',
                sync_sources={i: dict(where[i].most_common(20)) for i in where})


def section_augmentation(ctx: Context) -> None:
    import augmentation
    import cv2
    from mmengine.dataset import default_collate

    from mmsimclr.registry import MODELS
    s, dev = ctx.sizes, ctx.device
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    try:
        r = augmentation.measure(s['aug_images'], s['aug_rounds'], augmentation.CIFAR, 0, [dev])
    finally:
        cv2.setNumThreads(cv_threads)
        torch.set_num_threads(threads)
    ips = r['ips']
    ctx.add('per-image CPU pipeline, 1 thread: images/s', ips['mmpretrain'], ips['mmsimclr-cpu'],
            'ref: mmpretrain pipeline; 2 views of 224 px from 500x375 JPEGs')
    for where in ('cpu', 'cuda'):
        metric = f'batched on {where} (1-thread decode + preprocessor): images/s'
        if where == dev.type:
            ctx.add(metric, ips['mmsimclr-cpu'], ips[f'mmsimclr-batched-{where}'], 'ref: our per-image CPU pipeline')
        elif where == 'cuda':
            ctx.add(metric, NA_CPU, NA_CPU)

    # the device part alone: SimCLRDataPreprocessor on a collated batch of the loader's 320x320 uint8 images
    # (host->device copy included), against our per-image CPU pipeline's rate
    _, loader, pre_cfg, _ = augmentation.build_pipelines()
    n = s['aug_pre_images']
    pre = MODELS.build(dict(pre_cfg, seed=0)).to(dev)
    with tempfile.TemporaryDirectory() as tmp:
        paths = augmentation.make_images(tmp, s['aug_images'], augmentation.CIFAR, 0)
        samples = [loader(dict(img_path=p, sample_idx=i)) for i, p in enumerate(paths)]
    batch = default_collate([copy.deepcopy(samples[i % len(samples)]) for i in range(n)])
    t = interleaved_medians({'pre': lambda: pre(copy.copy(batch), training=True)}, s['aug_pre_repeats'], 1, dev)
    ctx.add(f'{dev.type} SimCLRDataPreprocessor alone, batch {n}: images/s', ips['mmsimclr-cpu'], n / t['pre'],
            'ref: our per-image CPU pipeline (1 thread)')


def section_global_bn(ctx: Context) -> None:
    import global_bn
    import torch.distributed as dist

    from mmsimclr.utils import register_all_modules
    s, dev = ctx.sizes, ctx.device
    register_all_modules(init_default_scope=True)
    backend = 'nccl' if ctx.cuda and dist.is_nccl_available() else 'gloo'
    try:
        created = global_bn.init_one_rank_group(backend)
    except Exception:  # noqa: BLE001  (NCCL refused: gloo also takes CUDA tensors)
        backend, created = 'gloo', global_bn.init_one_rank_group('gloo')
    try:
        torch.manual_seed(0)
        x = torch.randn(s['gbn_batch'], 3, s['gbn_size'], s['gbn_size']).to(dev)
        models, _, unavailable = global_bn.build_variants(['BatchNorm2d', 'SyncBatchNorm', 'GlobalBN'],
                                                          s['gbn_depth'], x)
        if 'GlobalBN' in unavailable:
            raise RuntimeError(f'GlobalBN: {unavailable["GlobalBN"]}')
        t = interleaved_medians({v: (lambda m=m: global_bn.step(m, x)) for v, m in models.items()},
                                s['gbn_repeats'], 1, dev)
        if 'SyncBatchNorm' in t:
            ref, note = t['SyncBatchNorm'] * 1e3, 'ref: SyncBatchNorm (one rank: torch runs plain batch norm)'
        else:
            ref = NA_CPU if not ctx.cuda else 'n/a'
            note = f'SyncBatchNorm: {unavailable.get("SyncBatchNorm", "?")[:80]}'
        note += f'; BatchNorm2d {t["BatchNorm2d"] * 1e3:.1f} ms; {backend} group'
        ctx.add(f'ResNet-{s["gbn_depth"]} + neck, {s["gbn_size"]} px, batch {s["gbn_batch"]}: fwd+bwd ms', ref,
                t['GlobalBN'] * 1e3, note)
    finally:
        if created:
            dist.destroy_process_group()


def section_compile(ctx: Context) -> None:
    import train_step
    s, dev = ctx.sizes, ctx.device
    if not ctx.cuda and ctx.quick:
        na = 'n/a on cpu --quick (compiling a train step takes minutes on a CPU)'
        for metric in ('compiled: images/s', 'compiled / eager', 'first call (compiling) s'):
            ctx.add(metric, na, na)
        return
    import torch._dynamo
    images = 2 * s['batch']
    results: Dict[str, dict] = {}
    torch.manual_seed(0)
    ref_model, _, _ = train_step.build('mmpretrain', ctx.case, dev)
    for impl, scope in (('ours', 'mmsimclr'), ('mmpretrain', 'mmpretrain')):
        if results and ctx.remaining() < 1.5 * results['ours']['first_s']:
            results[impl] = None  # would not finish in the budget
            continue
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        try:
            _, eager_wrapper, eager_step = train_step.build(scope, ctx.case, dev, init_from=ref_model)
            _, comp_wrapper, comp_step = train_step.build(scope, ctx.case, dev, compile_=True, init_from=ref_model)
            data = train_step.make_data(ctx.case, dev)
            sync(dev)
            t0 = time.perf_counter()
            comp_step(copy.copy(data), comp_wrapper)
            sync(dev)
            first = time.perf_counter() - t0
            t = interleaved_medians({'eager': lambda: eager_step(copy.copy(data), eager_wrapper),
                                     'compiled': lambda: comp_step(copy.copy(data), comp_wrapper)},
                                    s['compile_repeats'], 2, dev)
            graph_breaks = sum(torch._dynamo.utils.counters['graph_break'].values())
            results[impl] = dict(first_s=first, eager=images / t['eager'], compiled=images / t['compiled'],
                                 graph_breaks=graph_breaks)
        finally:
            torch._dynamo.reset()
    skipped = 'skipped: not enough of the time budget left to compile it'
    get = {i: (lambda k, i=i: results[i][k] if results.get(i) else skipped) for i in ('mmpretrain', 'ours')}
    breaks = ', '.join(f'{i} {results[i]["graph_breaks"]}' for i in ('ours', 'mmpretrain') if results.get(i))
    ctx.add(f'ResNet-{s["depth"]} {s["size"]} px fp32, compiled: images/s', get['mmpretrain']('compiled'),
            get['ours']('compiled'), f'graph breaks: {breaks}')
    ratio = {i: (results[i]['compiled'] / results[i]['eager'] if results.get(i) else skipped)
             for i in ('mmpretrain', 'ours')}
    ctx.add('compiled / eager images/s', ratio['mmpretrain'], ratio['ours'],
            'eager: ' + ', '.join(f'{i} {results[i]["eager"]:.1f} img/s' for i in ('ours', 'mmpretrain')
                                  if results.get(i)))
    ctx.add('first call (compiling) s', get['mmpretrain']('first_s'), get['ours']('first_s'))


SECTION_FNS = {'values': section_values, 'nt-xent': section_nt_xent, 'lars': section_lars,
               'train-step': section_train_step, 'host-syncs': section_host_syncs, 'augmentation': section_augmentation,
               'global-bn': section_global_bn, 'compile': section_compile}


# ---------------------------------------------------------------------------------------------------- running
def _on_alarm(signum, frame):
    raise BudgetSpent()


def run_section(ctx: Context, name: str, budget_s: float) -> dict:
    """Run one section under the remaining budget; its status, seconds and error."""
    ctx.section = name
    remaining = ctx.remaining()
    if remaining <= 0:
        ctx.add('-', '', '', f'skipped: time budget of {budget_s:g} s spent')
        return dict(name=name, status='skipped', seconds=0.0, error=None)
    use_alarm = hasattr(signal, 'setitimer')
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, remaining)
    t0 = time.monotonic()
    status, error = 'ok', None
    try:
        SECTION_FNS[name](ctx)
    except BudgetSpent:
        status, error = 'stopped', f'stopped: time budget of {budget_s:g} s spent during this section'
    except Exception as e:  # noqa: BLE001  (written in the table; the next section runs)
        status, error = 'error', f'{type(e).__name__}: {e}'.strip()
        traceback.print_exc()
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if error is not None:
        ctx.add('-', '', '', error.splitlines()[0][:300])
    if name == 'host-syncs' or status != 'ok':
        ctx.cache.clear()
    gc.collect()
    if ctx.cuda:
        try:
            torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001  (a broken context shows in the next section's row)
            pass
    return dict(name=name, status=status, seconds=time.monotonic() - t0, error=error)


def environment(device: torch.device, args) -> dict:
    import mmengine
    import mmpretrain

    import mmsimclr
    env = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
               device=str(device), torch=torch.__version__, cuda=torch.version.cuda, cudnn=None, gpu=None,
               capability=None, mmengine=mmengine.__version__, mmpretrain=mmpretrain.__version__,
               mmsimclr=mmsimclr.__version__, python=platform.python_version(), cpus=os.cpu_count(),
               torch_threads=torch.get_num_threads(), quick=args.quick, budget_s=args.budget_s,
               command=' '.join(['python', 'tools/benchmark/gpu_check.py'] + sys.argv[1:]))
    if device.type == 'cuda':
        env.update(gpu=torch.cuda.get_device_name(device),
                   capability='.'.join(map(str, torch.cuda.get_device_capability(device))),
                   cudnn=torch.backends.cudnn.version())
    return env


HEADER = ['section', 'metric', 'reference', 'ours', 'ours/ref', 'note']
VALUES_HEADER = ['check', 'precision', 'max rel err', 'max abs err', 'tolerance', 'result', 'note']
FAILED = ('FAIL', 'ERROR')


def is_value_row(row: dict) -> bool:
    return row['section'] == 'values'


def value_result(row: dict) -> str:
    """PASS, FAIL, ERROR (the check raised), n/a, or for the section's own row: STOPPED / SKIPPED (budget) / ERROR."""
    if row.get('result'):
        return row['result']
    note = row.get('note', '')
    return 'STOPPED' if note.startswith('stopped') else 'SKIPPED' if note.startswith('skipped') else 'ERROR'


RESULT_ORDER = ['PASS', 'FAIL', 'ERROR', 'n/a', 'STOPPED', 'SKIPPED']


def values_summary(rows: List[dict]) -> Dict[str, int]:
    counts = Counter(value_result(r) for r in rows if is_value_row(r))
    return {k: counts[k] for k in RESULT_ORDER if counts[k]}


def summary_line(summary: Dict[str, int]) -> str:
    return ', '.join(f'{n} {k}' for k, n in summary.items())


def _err(x) -> str:
    return '' if x is None else f'{x:.2e}'


def table_cells(rows: List[dict]) -> List[List[str]]:
    return [[r['section'], r['metric'], fmt(r['ref']), fmt(r['ours']),
             f'{r["ratio"]:.2f}' if r['ratio'] is not None else '', r['note']] for r in rows if not is_value_row(r)]


def value_cells(rows: List[dict]) -> List[List[str]]:
    return [[r['metric'], r.get('precision', ''), _err(r.get('rel_err')), _err(r.get('abs_err')), _err(r.get('tol')),
             value_result(r), r['note']] for r in rows if is_value_row(r)]


def _text(header: List[str], cells: List[List[str]], left: int) -> str:
    """Aligned columns; the first ``left`` columns left-aligned, the last one (note) not padded."""
    cells = [header] + cells
    widths = [min(max(len(c[i]) for c in cells), 60) for i in range(len(header) - 1)]
    lines = []
    for n, c in enumerate(cells):
        lines.append(' | '.join([c[i].ljust(widths[i]) if i < left else c[i].rjust(widths[i])
                                 for i in range(len(widths))] + [c[-1]]).rstrip())
        if n == 0:
            lines.append('-+-'.join('-' * w for w in widths) + '-+-' + '-' * 4)
    return '\n'.join(lines)


def text_table(rows: List[dict]) -> str:
    return _text(HEADER, table_cells(rows), 2)


def text_values_table(rows: List[dict]) -> str:
    return _text(VALUES_HEADER, value_cells(rows), 2)


def markdown(env: dict, sections: List[dict], rows: List[dict]) -> str:
    esc = lambda s: str(s).replace('|', '\\|')  # noqa: E731
    where = env['gpu'] or env['device']
    out = [f'# GPU check: mmsimclr vs mmpretrain on {where}', '',
           f'{env["date"]}; torch {env["torch"]}, CUDA {env["cuda"]}, cuDNN {env["cudnn"]}, compute capability '
           f'{env["capability"]}; mmengine {env["mmengine"]}, mmpretrain {env["mmpretrain"]}, mmsimclr '
           f'{env["mmsimclr"]}; Python {env["python"]}, {env["cpus"]} CPUs, {env["torch_threads"]} torch threads.', '',
           f'`{env["command"]}` (time budget {env["budget_s"]:g} s).', '']
    if any(is_value_row(r) for r in rows):
        summary = values_summary(rows)
        out += ['## Values: this device vs a float64 CPU reference', '',
                summary_line(summary) + '. Relative error: max over the compared '
                'tensors of ||value - reference||_2 / ||reference||_2; PASS when at most the tolerance. Precisions: '
                'fp32 with TF32 off; tf32 = cuDNN convolutions and CUDA matmuls in TF32; bf16 / fp16 = our `--amp`.',
                '', '| ' + ' | '.join(VALUES_HEADER) + ' |', '|---|---|---:|---:|---:|---|---|']
        out += ['| ' + ' | '.join(esc(c) for c in cells) + ' |' for cells in value_cells(rows)]
        out += ['']
    if any(not is_value_row(r) for r in rows):
        out += ['## Speed and memory: mmsimclr vs mmpretrain', '',
                'Times are medians of interleaved runs; "extra peak" is `torch.cuda.max_memory_allocated()` above '
                'the memory in use before the call.', '',
                '| ' + ' | '.join(HEADER) + ' |', '|---|---|---:|---:|---:|---|']
        out += ['| ' + ' | '.join(esc(c) for c in cells) + ' |' for cells in table_cells(rows)]
        out += ['']
    out += ['| section | status | seconds |', '|---|---|---:|']
    out += [f'| {s["name"]} | {s["status"]} | {s["seconds"]:.1f} |' for s in sections]
    return '\n'.join(out) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda', help='cuda (default) or cpu')
    parser.add_argument('--quick', action='store_true', help='tiny sizes (ResNet-18, 32-64 px, few repeats)')
    parser.add_argument('--budget-s', type=float, default=480, help='time budget of all sections (seconds)')
    parser.add_argument('--out', help='write the table to this Markdown file, and a .json beside it')
    parser.add_argument('--sections', nargs='+', default=SECTIONS, choices=SECTIONS)
    parser.add_argument('--batch', type=int, help='images per view of the train-step and compile sections')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s choice; 1 on a busy CPU)')
    args = parser.parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        parser.error(f'--device {args.device}: {e}')
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: no CUDA device here (torch {torch.__version__}, '
                     f'torch.version.cuda={torch.version.cuda}); use --device cpu')
    if device.type not in ('cuda', 'cpu'):
        parser.error(f'--device {args.device}: only cuda and cpu are supported')
    if args.out and not args.out.endswith('.md'):
        parser.error(f'--out {args.out}: give a Markdown file name ending in .md (the JSON goes beside it)')
    if args.budget_s <= 0:
        parser.error(f'--budget-s {args.budget_s:g}: give a positive number of seconds')

    if args.threads:
        torch.set_num_threads(args.threads)
    import logging

    from mmengine.logging import MMLogger

    from mmsimclr.utils import register_all_modules
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)  # no paramwise_options lines
    register_all_modules(init_default_scope=False)
    if device.type == 'cuda':
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # as configs/_base_/default_runtime.py; same for both sides

    start = time.monotonic()
    sizes = dict(SIZES['quick' if args.quick else device.type])
    if args.batch:
        sizes['batch'] = args.batch
    ctx = Context(device, sizes, args.quick, start + args.budget_s)
    env = environment(device, args)
    env['sizes'] = sizes
    print(f'GPU check on {env["gpu"] or env["device"]}: torch {env["torch"]}, CUDA {env["cuda"]}; '
          f'budget {args.budget_s:g} s', flush=True)
    sections = []
    for name in args.sections:
        result = run_section(ctx, name, args.budget_s)
        sections.append(result)
        print(f'[{name}] {result["status"]} in {result["seconds"]:.1f} s', flush=True)
    env['total_s'] = time.monotonic() - start

    summary = values_summary(ctx.rows)
    env['values'] = summary
    if any(is_value_row(r) for r in ctx.rows):
        print('\nvalues (this device vs float64 cpu): ' + summary_line(summary))
        print(text_values_table(ctx.rows))
    if any(not is_value_row(r) for r in ctx.rows):
        print()
        print(text_table(ctx.rows))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(markdown(env, sections, ctx.rows))
        json_path = osp.splitext(args.out)[0] + '.json'
        with open(json_path, 'w') as f:
            json.dump(dict(environment=env, sections=sections, rows=ctx.rows), f, indent=1)
        print(f'\nwrote {args.out} and {json_path}')
    failed = any(s['status'] == 'error' for s in sections) or any(summary.get(k) for k in FAILED)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
