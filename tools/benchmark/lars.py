"""LARS step: mmsimclr's ``LARS`` vs mmpretrain's ``LARS`` on the parameters of ResNet-18/ResNet-50 (+ SimCLR neck).

Both optimizers get the same parameter groups, built by ``SimCLROptimWrapperConstructor`` (norm layers and biases
in a ``lars_exclude`` group without weight decay, which mmpretrain's LARS honours too), lr 4.8, momentum 0.9,
weight decay 1e-6, and the same fixed random gradients (scaled like real ones); only ``optimizer.step()`` is timed,
alternating the implementations.

    python tools/benchmark/lars.py [--depth 18 50] [--repeats 15] [--device auto]

mmsimclr and mmpretrain are imported as installed (``pip install -e .`` for ours); ``common`` is this folder's
helper module (found next to the script).
"""
import argparse

import torch
import torch.nn as nn
from common import device_from_arg, fmt_ms, interleaved_medians


def build_model(depth: int) -> nn.Module:
    from mmpretrain.models import ResNet

    from mmsimclr.models.necks import NonLinearNeck
    width = 512 if depth < 50 else 2048
    return nn.ModuleDict(dict(backbone=ResNet(depth=depth),
                              neck=NonLinearNeck(width, 2048, 128, norm_cfg=dict(type='BN1d'))))


def param_groups(model: nn.Module):
    from mmsimclr.engine.optimizers import SimCLROptimWrapperConstructor
    ctor = SimCLROptimWrapperConstructor(dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=4.8)))
    groups = []
    for g in ctor(model).optimizer.param_groups:  # keep the constructor's choices, not SGD's defaults
        group = dict(params=g['params'])
        if g.get('lars_exclude', False):
            group.update(lars_exclude=True, weight_decay=g['weight_decay'])
        groups.append(group)
    return groups


def setup(depth: int, device, impl: str, seed: int = 0):
    from mmpretrain.engine.optimizers import LARS as MMPretrainLARS

    from mmsimclr.engine.optimizers import LARS
    torch.manual_seed(seed)
    model = build_model(depth).to(device)
    gen = torch.Generator().manual_seed(seed + 1)
    for p in model.parameters():
        p.grad = (torch.randn(p.shape, generator=gen) * 1e-3).to(device)
    groups = param_groups(model)
    kwargs = dict(lr=4.8, momentum=0.9, weight_decay=1e-6)
    if impl == 'mmpretrain':
        opt = MMPretrainLARS(groups, **kwargs)
    else:
        opt = LARS(groups, **kwargs)
    return model, opt


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--depth', type=int, nargs='+', default=[18, 50])
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--threads', type=int, help='torch.set_num_threads (default: torch\'s choice)')
    parser.add_argument('--device', default='auto')
    args = parser.parse_args(argv)
    device = device_from_arg(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    impls = ['mmpretrain', 'ours']
    print(f'LARS optimizer.step(), device={device}, threads={torch.get_num_threads()}; '
          f'median of {args.repeats} interleaved steps')
    print(f'{"model":>10} {"params":>9} | ' + ' | '.join(f'{i:>12}' for i in impls)
          + ' | ours/mmpretrain')
    results = []
    for depth in args.depth:
        opts = {}
        for impl in impls:
            model, opts[impl] = setup(depth, device, impl)
        n = sum(p.numel() for p in model.parameters())
        # warm-up steps first: the first step creates the momentum buffers
        t = interleaved_medians({i: o.step for i, o in opts.items()}, repeats=args.repeats, warmup=2, device=device)
        print(f'{"ResNet-" + str(depth):>10} {n / 1e6:8.1f}M | ' + ' | '.join(fmt_ms(t[i]).rjust(12) for i in impls)
              + f' | {t["ours"] / t["mmpretrain"]:15.2f}', flush=True)
        results.append(dict(depth=depth, time=t))
    return results


if __name__ == '__main__':
    main()
