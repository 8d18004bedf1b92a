"""Quality at equal budget on CIFAR-10: mmsimclr vs mmpretrain's SimCLR vs random-init features (kNN top-1).

    python tools/benchmark/quality_cifar10.py [--data ../shared/data/cifar10-jpeg.tar.gz] [--work-dir DIR]
        [--train-per-class 1000] [--test-per-class 200] [--epochs 30] [--batch-size 128] [--width 16]

The defaults (10,000 train images, 30 epochs) take about 40 min per implementation on an idle 2-core CPU;
``--epochs 12 --train-per-class 600`` is a quick check (~4 min each) at which SimCLR is still early in training.

Both implementations get the identical budget: the same class-balanced subset of the shared CIFAR-10 JPEG copy,
the same views (the recipe's pipeline: random resized crop 32, flip, colour distortion s = 0.5, grayscale, no
blur), the same CIFAR ResNet-18 of ``--width`` first-stage channels, the same projection MLP (8w-1024-128), the
same temperature (0.5), batch, epochs, LARS (lr = 0.075 sqrt(batch), momentum 0.9, wd 1e-6, norm/bias excluded),
warm-up + cosine schedule and seed. They differ only in the implementation:

* (a) mmsimclr: ``SimCLR``/``NonLinearNeck``/``ContrastiveHead`` + NT-Xent, ``GlobalBN``, our LARS constructor;
* (b) mmpretrain: ``mmpretrain.SimCLR``/``NonLinearNeck``/``ContrastiveHead`` (+ CrossEntropyLoss), BN, and
  ``mmpretrain.LARS`` with mmpretrain's name-based exclusions (``bn``, ``bias``, ``downsample.1``);
* (c) random init: the network of (a) before training.

Each training runs in its own process, one after the other; the figure is the weighted kNN top-1 (k = 200,
T = 0.1, cosine) of the pooled backbone features on the test subset with the train subset as memory bank.
Wall-clock times depend on the machine's load (the CPU may be shared); the table says what was measured.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_DATA = osp.join(osp.dirname(ROOT), 'shared', 'data', 'cifar10-jpeg.tar.gz')
RECIPE = 'simclr_r18-w8_1xb128-coslr-26e_cifar10-demo'  # the demo's config (a packaged name)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default=DEFAULT_DATA, help='CIFAR-10 image folder or cifar10-jpeg.tar.gz')
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'quality_cifar10'))
    p.add_argument('--train-per-class', type=int, default=1000)
    p.add_argument('--test-per-class', type=int, default=200)
    p.add_argument('--epochs', type=int, default=30)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--width', type=int, default=16)
    p.add_argument('--workers', type=int, default=1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--impls', default='mmsimclr,mmpretrain')
    p.add_argument('--skip-existing', action='store_true',
                   help='reuse WORK_DIR/<impl>.json of an earlier run instead of training again (table only)')
    p.add_argument('--single', help=argparse.SUPPRESS)  # internal: train one implementation in this process
    return p.parse_args(argv)


def build_config(args, data_root: str):
    """The demo recipe (:data:`RECIPE`) at this benchmark's width, batch, epochs, workers and seed, training on
    ``data_root``; the kNN monitor only before and after training, no time budget, no checkpoint."""
    from mmengine.config import Config

    from mmsimclr.utils.config_path import resolve_config
    cfg = Config.fromfile(resolve_config(RECIPE))
    knn = next(h for h in cfg.custom_hooks if h['type'] == 'KNNMonitorHook')
    w, batch, epochs = args.width, args.batch_size, args.epochs
    warmup = max(1, round(epochs / 10))  # a tenth of the epochs, then cosine (as the recipe: 2 of 20)
    schedule = [dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=warmup,
                     convert_to_iter_based=True)]
    if epochs > warmup:
        schedule.append(dict(type='CosineAnnealingLR', T_max=epochs - warmup, by_epoch=True, begin=warmup,
                             end=epochs, convert_to_iter_based=True))
    cfg.merge_from_dict({
        'work_dir': osp.join(args.work_dir, args.single), 'randomness.seed': args.seed,
        'train_dataloader.dataset.data_root': data_root, 'train_dataloader.batch_size': batch,
        'train_dataloader.num_workers': args.workers, 'train_dataloader.persistent_workers': args.workers > 0,
        'model.backbone.stem_channels': w, 'model.backbone.base_channels': w, 'model.neck.in_channels': 8 * w,
        'optim_wrapper.optimizer.lr': round(0.075 * batch ** 0.5, 4),  # the recipe's square-root scaling
        'auto_scale_lr.base_batch_size': batch, 'train_cfg.max_epochs': epochs, 'param_scheduler': schedule,
        # the paper's CIFAR temperature, views (crops of 8-100% of the image: the CIFAR base's train_pipeline) and
        # the default memory format, as this benchmark was measured (the demo recipe now uses T = 0.2, 20-100% crops
        # and channels-last for its 10-minute budget)
        'model.head.temperature': 0.5, 'model.channels_last': False,
        'train_dataloader.dataset.pipeline': cfg.train_pipeline,
        'custom_hooks': [dict(knn, interval=10 ** 6, num_workers=args.workers)],
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=10 ** 6)})
    return cfg


def mmpretrain_variant(cfg, width: int) -> None:
    """Swap the model and optimizer for mmpretrain's own types with the same hyper-parameters (in place)."""
    m = cfg.model
    cfg.model = dict(
        type='mmpretrain.SimCLR',
        data_preprocessor=dict(m.data_preprocessor, type='mmpretrain.SelfSupDataPreprocessor'),
        backbone=dict(m.backbone, type='mmpretrain.ResNet_CIFAR', norm_cfg=dict(type='BN')),
        neck=dict(m.neck, type='mmpretrain.NonLinearNeck', norm_cfg=dict(type='BN1d')),
        head=dict(type='mmpretrain.ContrastiveHead', loss=dict(type='mmpretrain.CrossEntropyLoss'),
                  temperature=m.head.temperature))
    opt = cfg.optim_wrapper.optimizer
    excluded = dict(decay_mult=0, lars_exclude=True)
    cfg.optim_wrapper = dict(
        type='OptimWrapper',
        optimizer=dict(type='mmpretrain.LARS', lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay),
        paramwise_cfg=dict(custom_keys={'bn': excluded, 'bias': excluded, 'downsample.1': excluded}))


def run_single(args) -> dict:
    import torch

    from mmsimclr.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    from mmengine.runner import Runner

    from mmsimclr.utils.vis_scalars import read_scalar_rows, read_scalars
    cfg = build_config(args, osp.join(args.work_dir, 'data'))
    if args.single == 'mmpretrain':
        mmpretrain_variant(cfg, args.width)
    runner = Runner.from_cfg(cfg)
    start = time.time()
    runner.train()
    seconds = time.time() - start
    eval_s = sum(r.get('knn/time_s', 0) for r in read_scalar_rows(runner.log_dir))
    history = dict(read_scalars(runner.log_dir)[1])
    return dict(impl=args.single, knn_top1=history[args.epochs], knn_top1_init=history[0],
                train_minutes=round((seconds - eval_s) / 60, 2), threads=torch.get_num_threads(),
                model=type(runner.model).__module__ + '.' + type(runner.model).__name__,
                optimizer=type(runner.optim_wrapper.optimizer).__module__)


def median_iter_seconds(work_dir: str, impl: str):
    """Median seconds per training iteration of ``impl``'s newest run (mmengine's ``time`` scalar): less
    sensitive than the wall-clock to other jobs on a shared machine. None if the log is missing."""
    import glob
    import statistics
    logs = sorted(glob.glob(osp.join(work_dir, impl, '*', 'vis_data', 'scalars.json')))
    if not logs:
        return None
    with open(logs[-1]) as f:
        times = [r['time'] for r in map(json.loads, f) if 'time' in r]
    return statistics.median(times) if times else None


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    if args.single:
        result = run_single(args)
        with open(osp.join(args.work_dir, f'{args.single}.json'), 'w') as f:
            json.dump(result, f, indent=2)
        return result

    from mmsimclr.datasets.cifar10_subset import prepare_cifar10_subset
    t0 = time.time()
    prepare_cifar10_subset(args.data, args.work_dir, args.train_per_class, args.test_per_class, args.seed)
    results = {}
    for impl in args.impls.split(','):
        if args.skip_existing and osp.isfile(osp.join(args.work_dir, f'{impl}.json')):
            print(f'[quality] {impl}: reusing {args.work_dir}/{impl}.json', flush=True)
        else:
            print(f'[quality] training {impl} ...', flush=True)
            cmd = [sys.executable, osp.abspath(__file__), '--single', impl] + [
                f'--{k.replace("_", "-")}={v}' for k, v in vars(args).items()
                if k not in ('single', 'impls', 'skip_existing')]
            subprocess.run(cmd, check=True)
        with open(osp.join(args.work_dir, f'{impl}.json')) as f:
            results[impl] = json.load(f)
        results[impl]['median_iter_s'] = median_iter_seconds(args.work_dir, impl)
    first = results[next(iter(results))]
    lines = [
        f'CIFAR-10 (shared JPEG copy), {args.train_per_class * 10} train / {args.test_per_class * 10} test images, '
        f'CIFAR ResNet-18 width {args.width}, {args.epochs} epochs, batch {args.batch_size}, '
        f'{first["threads"]} CPU threads; kNN k=200, T=0.1 on pooled backbone features',
        '',
        '| features | kNN top-1 (%) | training wall-clock (min) | median s / iteration |',
        '|---|---|---|---|',
    ]
    names = dict(mmsimclr='(a) mmsimclr SimCLR', mmpretrain="(b) mmpretrain's SimCLR (own types + LARS)")
    for impl, r in results.items():
        it = f'{r["median_iter_s"]:.3f}' if r.get('median_iter_s') else '-'
        lines.append(f'| {names.get(impl, impl)} | {r["knn_top1"]:.2f} | {r["train_minutes"]:.1f} | {it} |')
    lines.append(f'| (c) random init (network of (a) before training) | {first["knn_top1_init"]:.2f} | - | - |')
    table = '\n'.join(lines)
    print('\n' + table + f'\n\ntotal: {(time.time() - t0) / 60:.1f} min', flush=True)
    with open(osp.join(args.work_dir, 'quality.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(args.work_dir, 'quality.json'), 'w') as f:
        json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    main()
