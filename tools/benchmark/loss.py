"""NT-Xent forward + backward: mmsimclr's ``NTXentLoss`` vs mmpretrain's ``SimCLR.loss`` after the neck.

mmpretrain's part is run through its own ``SimCLR.loss`` (normalisation, gather, ``(2N x 2N)`` similarity,
``masked_select`` of the diagonal and of the positives, ``ContrastiveHead`` + ``CrossEntropyLoss``) with an identity
backbone and neck fed the projections, so exactly its code after the neck is timed.

    python tools/benchmark/loss.py [--batch 256 1024 4096] [--dim 128] [--repeats 5] [--chunk 1024] [--device auto]

Prints, per batch size (images; rows = 2 x batch), median time of forward + backward for mmpretrain, ours and ours
chunked, the ratios, and the extra peak memory of each (fresh subprocess per measurement, see common.py).
mmsimclr and mmpretrain are imported as installed; ``common`` is this folder's helper module (next to the script).
"""
import argparse

import torch
from common import (PeakMemory, device_from_arg, fmt_mb, fmt_ms, interleaved_medians, measure_in_subprocess,
                    mmpretrain_simclr_loss)


def build(impl: str, temperature: float, chunk: int, device):
    """A callable ``loss(z_views)`` for ``impl`` in {'mmpretrain', 'ours', 'ours_chunked'}."""
    if impl == 'mmpretrain':
        return mmpretrain_simclr_loss(temperature, device)
    from mmsimclr.models.losses import NTXentLoss
    loss = NTXentLoss(temperature, chunk_size=chunk if impl == 'ours_chunked' else None)
    return lambda views: loss(torch.stack(views, 1).flatten(0, 1), num_views=2)


def make_inputs(batch: int, dim: int, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g).to(device).requires_grad_() for _ in range(2)]


def run_once(fn, views):
    for v in views:
        v.grad = None
    fn(views).backward()


def memory_child(args) -> None:
    device = device_from_arg(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    fn = build(args.impl, args.temperature, args.chunk, device)
    views = make_inputs(args.batch[0], args.dim, device)
    if device.type == 'cuda':
        run_once(fn, views)  # CUDA context and kernels loaded outside the measurement
    with PeakMemory(device) as pm:
        run_once(fn, views)
    print('PEAK_BYTES', pm.extra)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, nargs='+', default=[256, 1024, 4096])
    parser.add_argument('--dim', type=int, default=128)
    parser.add_argument('--temperature', type=float, default=0.1)
    parser.add_argument('--chunk', type=int, default=1024, help='chunk_size of the chunked mode')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, help='torch.set_num_threads (default: torch\'s choice)')
    parser.add_argument('--device', default='auto', help='auto, cpu or cuda')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory subprocesses')
    parser.add_argument('--impl', help=argparse.SUPPRESS)  # child mode: one peak-memory measurement
    args = parser.parse_args(argv)
    if args.impl:
        return memory_child(args)

    device = device_from_arg(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    impls = ['mmpretrain', 'ours', 'ours_chunked']
    print(f'NT-Xent forward+backward, d={args.dim}, tau={args.temperature}, device={device}, '
          f'threads={torch.get_num_threads()}, chunk={args.chunk}; median of {args.repeats} interleaved runs')
    print(f'{"batch":>6} {"rows":>6} | ' + ' | '.join(f'{i:>12}' for i in impls)
          + ' | ours/mmpt chunked/mmpt | ' + ' | '.join(f'{"mem " + i:>18}' for i in impls) + ' | mem ours/mmpt')
    results = []
    for batch in args.batch:
        views = make_inputs(batch, args.dim, device)
        fns = {i: build(i, args.temperature, args.chunk, device) for i in impls}
        t = interleaved_medians({i: (lambda f=f: run_once(f, views)) for i, f in fns.items()},
                                repeats=args.repeats, device=device)
        mem = {}
        if not args.no_memory:
            for i in impls:
                mem[i] = measure_in_subprocess(__file__, [
                    '--impl', i, '--batch', str(batch), '--dim', str(args.dim), '--chunk', str(args.chunk),
                    '--temperature', str(args.temperature), '--device', str(device)])
        line = (f'{batch:6d} {2 * batch:6d} | ' + ' | '.join(fmt_ms(t[i]).rjust(12) for i in impls)
                + f' | {t["ours"] / t["mmpretrain"]:9.2f} {t["ours_chunked"] / t["mmpretrain"]:12.2f} | ')
        if mem:
            line += ' | '.join(fmt_mb(mem[i]).rjust(18) for i in impls) + f' | {mem["ours"] / mem["mmpretrain"]:13.2f}'
        print(line, flush=True)
        results.append(dict(batch=batch, time=t, mem=mem))
    return results


if __name__ == '__main__':
    main()
