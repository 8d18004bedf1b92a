"""GPU check: mmsimclr vs mmpretrain on one device, every speed figure of the benchmarks in one table.

    python tools/benchmark/gpu_check.py [--device cuda] [--budget-s 480] [--out FILE.md] [--quick]
                                        [--sections nt-xent lars ...]

Sections (each guarded: an error is written in its row and the next section runs; one time budget for all: the
section running when it is spent is stopped and the remaining ones are skipped):

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

``--device cpu --quick`` runs the same sections at tiny sizes (ResNet-18, 32-64 px, small batches, few repeats;
compiling is skipped: it takes minutes on a CPU; add ``--threads 1`` on a busy machine); what needs CUDA reads
``n/a on cpu``. ``--out FILE.md`` writes the
table as Markdown with the device, versions and date, and ``FILE.json`` beside it. Exit status 1 if a section failed.

mmsimclr and mmpretrain are imported as installed; the other benchmark modules are imported from this folder
(next to the script).
"""
import argparse
import copy
import datetime
import gc
import json
import os
import os.path as osp
import platform
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from typing import Callable, Dict, List

import torch
from common import PeakMemory, interleaved_medians, sync

NA_CPU = 'n/a on cpu'
SECTIONS = ['nt-xent', 'lars', 'train-step', 'host-syncs', 'augmentation', 'global-bn', 'compile']

# sizes per mode: 'cuda' (the real check, one GPU), 'cpu' (same models, small batches), 'quick' (the CPU test)
SIZES = {
    'cuda': dict(loss_batches=[256, 1024, 4096], loss_chunk=1024, loss_repeats=10, lars_depth=50, lars_repeats=20,
                 depth=50, size=224, batch=128, train_repeats=10, train_warmup=3, sync_steps=3,
                 aug_images=64, aug_rounds=3, aug_pre_images=256, aug_pre_repeats=10,
                 gbn_depth=50, gbn_size=224, gbn_batch=64, gbn_repeats=5, compile_repeats=10),
    'cpu': dict(loss_batches=[256, 1024], loss_chunk=512, loss_repeats=3, lars_depth=50, lars_repeats=5,
                depth=50, size=224, batch=4, train_repeats=3, train_warmup=1, sync_steps=1,
                aug_images=16, aug_rounds=2, aug_pre_images=16, aug_pre_repeats=2,
                gbn_depth=50, gbn_size=224, gbn_batch=2, gbn_repeats=2, compile_repeats=3),
    # quick: train steps at 32 px, as bf16 autocast on a CPU without AVX512-BF16 is ~10x slower than fp32
    'quick': dict(loss_batches=[64], loss_chunk=32, loss_repeats=2, lars_depth=18, lars_repeats=2,
                  depth=18, size=32, batch=2, train_repeats=1, train_warmup=1, sync_steps=1,
                  aug_images=4, aug_rounds=1, aug_pre_images=4, aug_pre_repeats=1,
                  gbn_depth=18, gbn_size=64, gbn_batch=2, gbn_repeats=1, compile_repeats=2),
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


SECTION_FNS = {'nt-xent': section_nt_xent, 'lars': section_lars, 'train-step': section_train_step,
               'host-syncs': section_host_syncs, 'augmentation': section_augmentation,
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


def table_cells(rows: List[dict]) -> List[List[str]]:
    return [[r['section'], r['metric'], fmt(r['ref']), fmt(r['ours']),
             f'{r["ratio"]:.2f}' if r['ratio'] is not None else '', r['note']] for r in rows]


def text_table(rows: List[dict]) -> str:
    cells = [HEADER] + table_cells(rows)
    widths = [min(max(len(c[i]) for c in cells), 60) for i in range(len(HEADER) - 1)]
    lines = []
    for n, c in enumerate(cells):
        lines.append(' | '.join([c[i].ljust(widths[i]) if i < 2 else c[i].rjust(widths[i])
                                 for i in range(len(widths))] + [c[-1]]).rstrip())
        if n == 0:
            lines.append('-+-'.join('-' * w for w in widths) + '-+-' + '-' * 4)
    return '\n'.join(lines)


def markdown(env: dict, sections: List[dict], rows: List[dict]) -> str:
    esc = lambda s: str(s).replace('|', '\\|')  # noqa: E731
    where = env['gpu'] or env['device']
    out = [f'# GPU check: mmsimclr vs mmpretrain on {where}', '',
           f'{env["date"]}; torch {env["torch"]}, CUDA {env["cuda"]}, cuDNN {env["cudnn"]}, compute capability '
           f'{env["capability"]}; mmengine {env["mmengine"]}, mmpretrain {env["mmpretrain"]}, mmsimclr '
           f'{env["mmsimclr"]}; Python {env["python"]}, {env["cpus"]} CPUs, {env["torch_threads"]} torch threads.', '',
           f'`{env["command"]}` (time budget {env["budget_s"]:g} s). Times are medians of interleaved runs; '
           '"extra peak" is `torch.cuda.max_memory_allocated()` above the memory in use before the call.', '',
           '| ' + ' | '.join(HEADER) + ' |', '|---|---|---:|---:|---:|---|']
    out += ['| ' + ' | '.join(esc(c) for c in cells) + ' |' for cells in table_cells(rows)]
    out += ['', '| section | status | seconds |', '|---|---|---:|']
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
    return 1 if any(s['status'] == 'error' for s in sections) else 0


if __name__ == '__main__':
    sys.exit(main())
