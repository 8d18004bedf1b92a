"""Gradient caching (``SimCLR(grad_cache=dict(chunk_size=C))``): a batch of ``B`` images in chunks of ``C`` rows
against the plain step, memory and time, one process.

Columns (each a full ``model.train_step(data, optim_wrapper)``: preprocessing, forward, NT-Xent, backward, LARS
step; models built as ``train_step.py`` builds them, ResNet + 2048-2048-128 projection head, plain BN, same
initial weights, random uint8 views):

* ``plain C``: mmsimclr's plain step on ``C / V`` images (``C`` rows, the chunk's memory);
* ``grad cache B/C``: the grad-cache step on ``B`` images in chunks of ``C`` rows (the large batch's objective);
* ``plain B``: the plain step on ``B`` images, where it fits (the same objective without caching; ``--no-plain-b``
  to skip it);
* ``mmpretrain C``: mmpretrain's SimCLR step on ``C / V`` images (its LARS and name-based exclusions).

Memory: the peak, over the step, of the bytes autograd keeps saved for backward (``global_bn.py``'s counter,
``SavedActivations``: tensors reaching ``saved_tensors_hooks``, each storage once, parameters and buffers left out),
here tracking which saved storages are still alive, so that a chunk's activations stop counting once its backward
has freed them. The grad-cache step also keeps the projections ``z`` and ``dL/dz`` of the whole batch alive
(``embeddings`` = ``2 x B V x d`` elements), which are not saved tensors: the target is
``peak(grad cache) + embeddings <= 1.1 x (peak(plain C) + embeddings)``. On CUDA the extra peak of allocated memory
(``max_memory_allocated``) is printed too.

Time: median seconds per image (``B`` or ``C / V`` images per step) over interleaved steps; target
``grad cache <= 1.4 x plain`` per image. The plain step of the same batch ``B`` is the fair reference for the cost
of caching itself (one more forward); the plain step of ``C`` also carries the small-batch NT-Xent, which is
``B / (C / V)`` times cheaper per image.

    python tools/benchmark/grad_cache.py [--depth 18] [--size 32] [--batch 1024] [--chunk 256] [--repeats 3]
                                         [--device cpu|cuda|auto] [--threads N] [--no-plain-b] [--no-mmpretrain]
                                         [--memory-only]

Defaults fit a 2-core CPU in about two minutes (ResNet-18 on 32 px images). ``--batch 4096 --memory-only``
measures the issue's setting, a batch of 4096 in chunks of 256 rows, without timing it (one step of each).
Small images make small convolutions, on which per-operation overheads weigh more in a chunk than in a whole
batch; on a GPU use e.g. ``--device cuda --depth 50 --size 224 --batch 4096 --chunk 256 --no-plain-b``.
"""
import argparse
import copy
import os
import sys
from collections import Counter

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # siblings, whether run as a script or imported
from common import PeakMemory, device_from_arg, fmt_ms, interleaved_medians  # noqa: E402
from global_bn import SavedActivations  # noqa: E402

import train_step  # noqa: E402


class PeakSavedActivations(SavedActivations):
    """``SavedActivations`` counting the *live* saved bytes: ``peak`` is the most that were kept at one time.

    Each saved tensor is packed into a holder; a storage counts from its first holder's creation until its last
    holder is freed (autograd drops saved tensors once a backward has used them).
    """

    def __init__(self, exclude=None):
        super().__init__(exclude)
        self._refs: Counter = Counter()
        self.live = self.peak = 0

    class _Held:

        def __init__(self, owner, t, ptr, nbytes):
            self.owner, self.t, self.ptr, self.nbytes = owner, t, ptr, nbytes

        def __del__(self):
            if self.ptr is not None:
                self.owner._release(self.ptr, self.nbytes)

    def _pack(self, t):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr in self._skip:
            return self._Held(self, t, None, 0)
        if self._refs[ptr] == 0:
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
        self._refs[ptr] += 1
        return self._Held(self, t, ptr, storage.nbytes())

    def _release(self, ptr, nbytes):
        self._refs[ptr] -= 1
        if self._refs[ptr] == 0:
            del self._refs[ptr]
            self.live -= nbytes

    @property
    def nbytes(self) -> int:
        return self.peak

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda held: held.t)
        self._hooks.__enter__()
        return self


def make_views(images: int, size: int, device, num_views: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (images, 3, size, size), generator=g, dtype=torch.uint8).to(device)
            for _ in range(num_views)]


def build(scope: str, case: str, device, batch_images: int, grad_cache=None, init_from=None):
    """A model (``train_step.model_cfg``, plus ``grad_cache``) and its LARS optim wrapper for ``batch_images``."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from mmsimclr.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    registry_scope = 'mmpretrain' if scope == 'mmpretrain' else 'mmsimclr'
    with DefaultScope.overwrite_default_scope(registry_scope):
        if scope == 'mmpretrain':
            from mmpretrain.registry import MODELS
        else:
            from mmsimclr.registry import MODELS
        cfg = train_step.model_cfg(scope, case)
        if grad_cache is not None:
            cfg['grad_cache'] = grad_cache
        model = MODELS.build(cfg)
        if init_from is not None:
            model.load_state_dict(init_from.state_dict())
        model.to(device)
        wrapper = build_optim_wrapper(model, train_step.optim_cfg(scope, batch_images, False, device))
    return model, wrapper


def measure(model, wrapper, views, device):
    """``(peak saved bytes, CUDA extra peak bytes or None)`` of one step on ``views``."""
    data = dict(inputs=views, data_samples=None)
    with PeakSavedActivations(model) as saved, PeakMemory(device) as peak:
        model.train_step(copy.copy(data), wrapper)
    return saved.peak, (peak.extra if device.type == 'cuda' else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--depth', type=int, default=18, choices=[18, 34, 50, 101, 152])
    parser.add_argument('--size', type=int, default=32, help='image size (px)')
    parser.add_argument('--batch', type=int, default=1024, help='B: images per grad-cache step')
    parser.add_argument('--chunk', type=int, default=256, help='C: rows (images x views) per chunk')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, help='torch.set_num_threads (default: torch\'s choice)')
    parser.add_argument('--device', default='cpu', help="'cpu' (default), 'cuda' or 'auto'")
    parser.add_argument('--no-plain-b', action='store_true', help='skip the plain step on B images')
    parser.add_argument('--no-mmpretrain', action='store_true', help="skip mmpretrain's step on C / V images")
    parser.add_argument('--memory-only', action='store_true', help='measure memory only (one step each)')
    args = parser.parse_args(argv)
    device = device_from_arg(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging

    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)

    num_views = 2
    if args.chunk % num_views:
        parser.error(f'--chunk must be a multiple of {num_views} (rows = images x views)')
    small = args.chunk // num_views  # images of the plain step whose memory a chunk has
    width = 512 if args.depth < 50 else 2048
    train_step.CASES['grad-cache'] = ('ResNet', args.depth, args.size, small, width, 0.1)
    case = 'grad-cache'
    torch.manual_seed(0)
    ref, ref_wrapper = (None, None) if args.no_mmpretrain else build('mmpretrain', case, device, small)
    plain, plain_wrapper = build('mmsimclr', case, device, small, init_from=ref)
    cached, cached_wrapper = build('mmsimclr', case, device, args.batch, dict(chunk_size=args.chunk),
                                   init_from=plain)
    plain_b = None if args.no_plain_b else build('mmsimclr', case, device, args.batch, init_from=plain)
    views_small, views_big = make_views(small, args.size, device), make_views(args.batch, args.size, device)

    runs = {'plain C': (plain, plain_wrapper, views_small, small),
            'grad cache B/C': (cached, cached_wrapper, views_big, args.batch)}
    if plain_b is not None:
        runs['plain B'] = (*plain_b, views_big, args.batch)
    if ref is not None:
        runs['mmpretrain C'] = (ref, ref_wrapper, views_small, small)

    memory = {name: measure(model, wrapper, views, device) for name, (model, wrapper, views, _) in runs.items()}
    nan = float('nan')
    times = {name: nan for name in runs} if args.memory_only else interleaved_medians(
        {name: (lambda m=model, w=wrapper, v=views: m.train_step(dict(inputs=v, data_samples=None), w))
         for name, (model, wrapper, views, _) in runs.items()}, args.repeats, args.warmup, device)

    embed_dim = 128
    embeddings = 2 * args.batch * num_views * embed_dim * 4  # z and dL/dz of the whole batch, float32
    cuda = device.type == 'cuda'
    print(f'Grad cache, ResNet-{args.depth} + 2048-2048-128 head, {args.size} px, {num_views} views, B = {args.batch} '
          f'images in chunks of C = {args.chunk} rows ({small} images), device={device}, '
          f'threads={torch.get_num_threads()}'
          + ('; memory only' if args.memory_only else f'; median of {args.repeats} interleaved steps'))
    print(f'{"step":>16} | {"images":>6} | {"s/step":>9} | {"ms/image":>9} | {"saved MiB peak":>14}'
          + (f' | {"CUDA MiB peak":>13}' if cuda else ''))
    for name, (_, _, _, images) in runs.items():
        saved, extra = memory[name]
        timing = ' ' * 9 + '- | ' + ' ' * 8 + '-' if args.memory_only else \
            f'{times[name]:9.2f} | {times[name] / images * 1e3:9.3f}'
        print(f'{name:>16} | {images:6d} | {timing} | {saved / 2**20:14.1f}'
              + (f' | {extra / 2**20:13.1f}' if cuda else ''))
    saved_gc, saved_c = memory['grad cache B/C'][0], memory['plain C'][0]
    rows = args.batch * num_views
    print(f'embeddings (z and dL/dz of the B images): {embeddings / 2**20:.1f} MiB; not counted above, in either '
          f'step: the NT-Xent logits buffer, {rows} x {rows} float32 = {rows * rows * 4 / 2**20:.1f} MiB for B, '
          'live between the loss and its backward only (before the chunks run; bounded by the head\'s '
          'NTXentLoss chunk_size)')
    print(f'memory: (grad cache + embeddings) / (plain C + embeddings) = '
          f'{(saved_gc + embeddings) / (saved_c + embeddings):.3f} (target <= 1.1); '
          f'grad cache / plain C (saved only) = {saved_gc / saved_c:.3f}')
    per_image = {name: times[name] / runs[name][3] for name in runs}
    if not args.memory_only:
        line = f'time per image: grad cache / plain C = {per_image["grad cache B/C"] / per_image["plain C"]:.2f}'
        if 'plain B' in runs:
            line += f', grad cache / plain B = {per_image["grad cache B/C"] / per_image["plain B"]:.2f}'
        if 'mmpretrain C' in runs:
            line += f', grad cache / mmpretrain C = {per_image["grad cache B/C"] / per_image["mmpretrain C"]:.2f}'
        print(line + ' (target <= 1.4)', flush=True)
    return dict(times=times, memory=memory, embeddings=embeddings, per_image=per_image)


if __name__ == '__main__':
    main()
