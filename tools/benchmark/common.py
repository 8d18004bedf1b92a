"""Shared helpers of the side-by-side benchmarks: interleaved timing, peak memory in a fresh process, devices.

Timing: the two implementations are run alternately (A, B, A, B, ...) after warm-up and the median of each is
reported, so that load from other jobs on a shared machine hits both about equally; ratios are ours / theirs.

Peak memory (CPU): torch's CPU allocator is invisible to ``tracemalloc``, so each measurement runs in a fresh
subprocess: the inputs are built, the resident set size is read from ``/proc/self/status`` (``VmRSS``, ``base``),
the measured call runs once, and the extra peak is ``VmHWM - base`` (the high-water mark of resident memory of the
process's address space). ``VmHWM`` rather than ``resource.getrusage().ru_maxrss``: on Linux ``ru_maxrss`` of a
child starts from its parent's high-water mark (kept across fork + exec), so a benchmark parent that has already
run the big case would hide the child's own peak. A fresh process per measurement also keeps one run's
freed-but-cached memory out of the next. On CUDA the extra peak is ``torch.cuda.max_memory_allocated() - memory_allocated()`` before the call.
"""
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch
import torch.nn as nn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # working dir of children


def device_from_arg(name: str) -> torch.device:
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    return torch.device(name)


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved_medians(fns: Dict[str, Callable[[], None]], repeats: int, warmup: int = 1,
                        device: torch.device = torch.device('cpu')) -> Dict[str, float]:
    """Median seconds per call of each function, the functions being called alternately."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
            sync(device)
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def rss_bytes() -> int:
    """Current resident set size of this process."""
    return _status_kib('VmRSS') * 1024


def peak_rss_bytes() -> int:
    """High-water mark of the resident set size of this process (its own, not inherited from the parent)."""
    return _status_kib('VmHWM') * 1024


class PeakMemory:
    """``with PeakMemory(device) as pm: ...`` then ``pm.extra`` = extra peak bytes of the block (see module doc).

    On CPU the high-water mark is process-wide, so use it once per fresh process (``measure_in_subprocess``).
    """

    def __init__(self, device: torch.device):
        self.device, self.extra = device, None

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = rss_bytes()
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.extra = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.extra = peak_rss_bytes() - self.base
        return False


def measure_in_subprocess(script: str, args: List[str]) -> int:
    """Run ``script args`` in a fresh interpreter; it must print ``PEAK_BYTES <n>`` last. Returns n."""
    out = subprocess.run([sys.executable, script] + args, check=True, capture_output=True, text=True,
                         cwd=REPO).stdout
    lines = [line for line in out.splitlines() if line.startswith('PEAK_BYTES ')]
    return int(lines[-1].split()[1])


def fmt_ms(seconds: float) -> str:
    return f'{seconds * 1e3:9.1f} ms'


def fmt_mb(nbytes: float) -> str:
    return f'{nbytes / 2**20:8.0f} MB'


class _FeaturesAsImages(nn.Module):
    """Identity backbone: the 'images' handed to mmpretrain's ``SimCLR.loss`` are projections ``(n, d, 1, 1)``."""

    def forward(self, x):
        return (x, )


class _FlattenNeck(nn.Module):

    def forward(self, x):
        return (x[0].flatten(1), )


def mmpretrain_simclr_loss(temperature: float, device='cpu') -> Callable:
    """mmpretrain's SimCLR loss after the neck, run through its own ``SimCLR.loss`` (normalisation, gather,
    ``(2N x 2N)`` similarity, ``masked_select`` of the diagonal and of the positives, ``ContrastiveHead`` +
    ``CrossEntropyLoss``) with an identity backbone and neck: returns ``loss(views)`` for a list of two ``(n, d)``
    projection tensors. The oracle of the NT-Xent tests and the baseline of ``loss.py``."""
    from mmpretrain.models import SimCLR
    model = SimCLR(backbone=dict(type='mmpretrain.ResNet', depth=18),
                   head=dict(type='mmpretrain.ContrastiveHead', loss=dict(type='mmpretrain.CrossEntropyLoss'),
                             temperature=temperature))
    model.backbone, model.neck = _FeaturesAsImages(), _FlattenNeck()
    model.to(device)
    return lambda views: model.loss([v[:, :, None, None] for v in views], None)['loss']
