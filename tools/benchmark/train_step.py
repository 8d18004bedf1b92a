"""Full SimCLR training step, ``model.train_step(data, optim_wrapper)``: mmsimclr vs mmpretrain, same run.

mmpretrain's side is built from its own types (``mmpretrain.SimCLR``, ``NonLinearNeck``, ``ContrastiveHead`` +
``CrossEntropyLoss``, its ``LARS`` with the name-based ``custom_keys`` of its SimCLR config); ours from ours
(``mmsimclr.SimCLR``, ``NTXentLoss``, ``SimCLROptimWrapperConstructor``, ``LARS``). Plain BN in both (one process),
same initial weights (ours loads mmpretrain's state dict), same random uint8 views, LARS lr 0.3 x batch / 256,
momentum 0.9, weight decay 1e-6. The step includes data preprocessing, forward, loss, backward, LARS step and
zero_grad; steps of the two models alternate and the medians are compared.

    python tools/benchmark/train_step.py [--case r18-32 r50-224 r18-cifar] [--repeats 7] [--device auto]
                                         [--channels-last] [--amp] [--compile]

``--channels-last`` / ``--amp`` (bf16 on CPU and on GPUs that support it, else fp16 with dynamic loss scaling) /
``--compile`` (``torch.compile`` of ``train_step``, as mmengine's ``cfg.compile``) apply to ours only and are
reported as an extra column next to ours with the default settings.

mmsimclr and mmpretrain are imported as installed; ``common`` is this folder's helper module (next to the script).
"""
import argparse
import copy

import torch
from common import device_from_arg, fmt_ms, interleaved_medians

CASES = {
    # name: (backbone type suffix, depth, image size, images per step, neck in, temperature)
    'r18-32': ('ResNet', 18, 32, 64, 512, 0.5),  # ImageNet ResNet-18 (stride-2 stem) on 32x32 images
    'r50-224': ('ResNet', 50, 224, 8, 2048, 0.1),
    'r18-cifar': ('ResNet_CIFAR', 18, 32, 64, 512, 0.5),  # CIFAR stem: ~16x the compute of r18-32
}
DEFAULT_CASES = ['r18-32', 'r50-224']
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def model_cfg(scope: str, case: str, channels_last: bool = False) -> dict:
    backbone, depth, _, _, width, tau = CASES[case]
    head_loss = dict(type='mmpretrain.CrossEntropyLoss') if scope == 'mmpretrain' else dict(type='NTXentLoss')
    cfg = dict(
        type=f'{scope}.SimCLR',
        data_preprocessor=dict(type='mmpretrain.SelfSupDataPreprocessor', mean=MEAN, std=STD, to_rgb=True),
        backbone=dict(type=f'mmpretrain.{backbone}', depth=depth, out_indices=(3, ), norm_cfg=dict(type='BN'),
                      zero_init_residual=True),
        neck=dict(type=f'{scope}.NonLinearNeck', in_channels=width, hid_channels=2048, out_channels=128,
                  num_layers=2, with_avg_pool=True, norm_cfg=dict(type='BN1d')),
        head=dict(type=f'{scope}.ContrastiveHead', loss=head_loss, temperature=tau))
    if channels_last:
        cfg['channels_last'] = True
    return cfg


def optim_cfg(scope: str, batch: int, amp, device) -> dict:
    """``amp``: False (fp32), True (``tools/train.py --amp``: ``amp_optim_wrapper_cfg``) or ``'mmengine'``
    (mmengine's ``AmpOptimWrapper``, float16 with a dynamic loss scaler: what mmpretrain's ``tools/train.py --amp``
    sets; it needs a GPU)."""
    lars = dict(type=f'{scope}.LARS', lr=0.3 * batch / 256, momentum=0.9, weight_decay=1e-6)
    if scope == 'mmpretrain':  # mmpretrain's SimCLR config: exclusions by name substrings
        exclude = dict(decay_mult=0, lars_exclude=True)
        cfg = dict(type='OptimWrapper', optimizer=lars,
                   paramwise_cfg=dict(custom_keys={'bn': exclude, 'bias': exclude, 'downsample.1': exclude}))
    else:
        cfg = dict(type='OptimWrapper', optimizer=lars, constructor='SimCLROptimWrapperConstructor')
    if amp == 'mmengine':
        cfg.update(type='AmpOptimWrapper', loss_scale='dynamic')
    elif amp:  # what tools/train.py --amp picks: bf16 where native (no loss scaler), else fp16 + dynamic scaler
        from mmsimclr.engine.optimizers import amp_optim_wrapper_cfg
        cfg = amp_optim_wrapper_cfg(cfg)
        if cfg['type'] == 'BF16OptimWrapper':
            cfg['type'] = 'mmsimclr.BF16OptimWrapper'  # also for the mmpretrain-scope model
    return cfg


def build(scope: str, case: str, device, channels_last=False, amp=False, compile_=False, init_from=None):
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
        model = MODELS.build(model_cfg(scope, case, channels_last))
        if init_from is not None:
            model.load_state_dict(init_from.state_dict())
        model.to(device)
        if channels_last:  # also after .to(): moving keeps the format, this only makes sure
            model.to(memory_format=torch.channels_last)
        wrapper = build_optim_wrapper(model, optim_cfg(scope, CASES[case][3] * 2, amp, device))
    step = model.train_step
    if compile_:
        step = torch.compile(step)
    return model, wrapper, step


def make_data(case: str, device, seed: int = 0):
    _, _, size, batch, _, _ = CASES[case]
    g = torch.Generator().manual_seed(seed)
    views = [torch.randint(0, 256, (batch, 3, size, size), generator=g, dtype=torch.uint8).to(device)
             for _ in range(2)]
    return dict(inputs=views, data_samples=None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--case', nargs='+', default=DEFAULT_CASES, choices=list(CASES))
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, help='torch.set_num_threads (default: torch\'s choice)')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--amp', action='store_true')
    parser.add_argument('--compile', action='store_true')
    args = parser.parse_args(argv)
    device = device_from_arg(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging

    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)  # no paramwise_options lines
    options = [name for name, on in (('channels_last', args.channels_last), ('amp', args.amp),
                                     ('compile', args.compile)) if on]
    print(f'SimCLR train_step (LARS), device={device}, threads={torch.get_num_threads()}; '
          f'median of {args.repeats} interleaved steps' + (f'; ours+ = ours with {"+".join(options)}'
                                                            if options else ''))
    impls = ['mmpretrain', 'ours'] + (['ours+'] if options else [])
    print(f'{"case":>22} | ' + ' | '.join(f'{i:>12}' for i in impls) + ' | ours/mmpt'
          + (' ours+/mmpt' if options else ''))
    results = []
    for case in args.case:
        torch.manual_seed(0)
        ref_model, ref_wrapper, ref_step = build('mmpretrain', case, device)
        ours_model, ours_wrapper, ours_step = build('mmsimclr', case, device, init_from=ref_model)
        fns = {'mmpretrain': lambda: ref_step(copy.copy(data), ref_wrapper),
               'ours': lambda: ours_step(copy.copy(data), ours_wrapper)}
        if options:
            _, plus_wrapper, plus_step = build('mmsimclr', case, device, args.channels_last, args.amp, args.compile,
                                               init_from=ref_model)
            fns['ours+'] = lambda: plus_step(copy.copy(data), plus_wrapper)
        data = make_data(case, device)
        t = interleaved_medians(fns, repeats=args.repeats, warmup=args.warmup, device=device)
        _, _, size, batch, _, _ = CASES[case]
        label = f'{case} {batch}x2 {size}px'
        line = f'{label:>22} | ' + ' | '.join(fmt_ms(t[i]).rjust(12) for i in impls) + \
            f' | {t["ours"] / t["mmpretrain"]:9.2f}'
        if options:
            line += f' {t["ours+"] / t["mmpretrain"]:10.2f}'
        print(line, flush=True)
        results.append(dict(case=case, time=t))
    return results


if __name__ == '__main__':
    main()
