"""`make demo`: pretrain a small SimCLR model on CIFAR-10 on the CPU, show that it learned something, and keep it.

    python tools/demo.py [--data PATH] [--work-dir work_dirs/demo] [--max-minutes M] [--epochs N] ...

Steps (about 10-12 minutes on 2 CPU cores):

1. data: ``--data`` is CIFAR-10 as an image folder (``train/<class>/*``, ``test/<class>/*``) or the
   ``cifar10-jpeg.tar.gz`` archive of it (unpacked next to the work dir once); without ``--data`` mmpretrain's
   CIFAR10 is downloaded (needs internet). A class-balanced subset (``--train-per-class``, ``--test-per-class``)
   is linked into ``WORK_DIR/data``.
2. training: the recipe is the config ``configs/simclr_r18-w8_1xb128-coslr-26e_cifar10-demo.py`` (an eighth-width
   CIFAR ResNet-18, LARS, warm-up + cosine, kNN monitor, ``TimeBudgetHook``), run by mmengine's Runner with its
   progress log and ETA. ``--epochs``, ``--batch-size``, ``--width``, ``--max-minutes`` ... change it for one run,
   ``--cfg-options KEY=VALUE`` any other setting.
   On a slow or busy machine the time budget stops training after an epoch and saves that epoch's checkpoint.
3. report, read from the run: the kNN top-1 curve (``vis_data/scalars.json``, epoch 0 = the run's random
   initialisation), the loss curve, the final checkpoint (``WORK_DIR/last_checkpoint``); a linear probe (L2
   logistic regression on frozen features, L2 strength chosen on held-out training images) of the final model and of
   a randomly initialised one (same config). Output: the table on stdout with the commands that evaluate,
   draw and use the model, ``WORK_DIR/demo_results.json`` and ``WORK_DIR/demo_curves.png``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import time

from mmengine.config import DictAction

DEMO_CONFIG = 'simclr_r18-w8_1xb128-coslr-26e_cifar10-demo'
# L2 strengths tried by the linear probe (held-out choice, as the transfer protocol; coarser than its 45 values)
LINEAR_PROBE_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', help='CIFAR-10 image folder (train/<class>/*, test/<class>/*) or a .tar.gz of it; '
                   "default: download mmpretrain's CIFAR10")
    p.add_argument('--work-dir', default=osp.join('work_dirs', 'demo'))
    p.add_argument('--config', default=DEMO_CONFIG, help='the recipe (a config file or a packaged config name)')
    p.add_argument('--train-per-class', type=int, default=500)
    p.add_argument('--test-per-class', type=int, default=200)
    g = p.add_argument_group('changes to the recipe for this run (default: the config\'s values)')
    g.add_argument('--epochs', type=int, help='epochs (warm-up: a tenth of them, then cosine)')
    g.add_argument('--batch-size', type=int, help="batch (the recipe's lr x sqrt(batch / its batch))")
    g.add_argument('--width', type=int, help='channels of the first ResNet-18 stage (64 = full)')
    g.add_argument('--knn-interval', type=int, help='epochs between kNN evaluations')
    g.add_argument('--max-minutes', type=float, help='training time budget (minutes)')
    g.add_argument('--workers', type=int, help='data loader processes')
    g.add_argument('--seed', type=int, default=0, help='subset choice and training seed')
    g.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                   help='any other setting, applied last (e.g. model.head.temperature=0.2)')
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------------------- data
def prepare_data(args) -> str:
    """The class-balanced subset of ``--data`` (or of the download) in ``WORK_DIR/data``
    (:func:`mmsimclr.datasets.cifar10_subset.prepare_cifar10_subset`)."""
    from mmsimclr.datasets.cifar10_subset import prepare_cifar10_subset
    return prepare_cifar10_subset(args.data, args.work_dir, args.train_per_class, args.test_per_class, args.seed)


# ---------------------------------------------------------------------------------------------- training
def build_config(args, data_root: str):
    """The recipe config with ``data_root``, the work dir and this run's changes (flags left unset keep it)."""
    from mmengine.config import Config

    from mmsimclr.utils.config_path import resolve_config
    cfg = Config.fromfile(resolve_config(args.config))
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.work_dir = args.work_dir
    cfg.randomness = dict(seed=args.seed)
    hooks = {h['type']: h for h in cfg.custom_hooks}
    if args.width is not None:
        w = args.width
        cfg.model.backbone.update(stem_channels=w, base_channels=w)
        cfg.model.neck.in_channels = 8 * w
    if args.batch_size is not None:  # the recipe's lr scaled by the square root of the batch ratio
        ratio = args.batch_size / cfg.train_dataloader.batch_size
        cfg.train_dataloader.batch_size = args.batch_size
        cfg.optim_wrapper.optimizer.lr = round(cfg.optim_wrapper.optimizer.lr * ratio ** 0.5, 4)
        cfg.auto_scale_lr = dict(base_batch_size=args.batch_size)
    if args.epochs is not None:
        e, warmup = args.epochs, max(1, round(args.epochs / 10))
        cfg.train_cfg.max_epochs = e
        cfg.param_scheduler = [dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=warmup,
                                    convert_to_iter_based=True)]
        if e > warmup:
            cfg.param_scheduler.append(dict(type='CosineAnnealingLR', T_max=e - warmup, by_epoch=True,
                                            begin=warmup, end=e, convert_to_iter_based=True))
        cfg.default_hooks.checkpoint.interval = e
    if args.knn_interval is not None:
        hooks['KNNMonitorHook']['interval'] = args.knn_interval
    if args.max_minutes is not None:
        hooks['TimeBudgetHook']['max_minutes'] = args.max_minutes
    if args.workers is not None:
        cfg.train_dataloader.update(num_workers=args.workers, persistent_workers=args.workers > 0)
        hooks['KNNMonitorHook']['num_workers'] = args.workers
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


# -------------------------------------------------------------------------------------------- reporting
def linear_probe(model, data_root: str, batch_size: int) -> float:
    """Top-1 (%) of an L2 logistic regression on the frozen ``feat`` of ``model`` (train split -> test split)."""
    import torch

    from mmsimclr import extract_features
    from mmsimclr.evaluation.logistic_regression import evaluate_transfer
    sets = {}
    for split in ('train', 'test'):
        classes = sorted(os.listdir(osp.join(data_root, split)))
        files = [(f, c) for c, name in enumerate(classes)
                 for f in sorted(glob.glob(osp.join(data_root, split, name, '*')))]
        feats = extract_features(model, [f for f, _ in files], batch_size=batch_size, progress=False)['feat']
        sets[split] = (torch.from_numpy(feats), torch.tensor([c for _, c in files]))
    return evaluate_transfer(*sets['train'], *sets['test'], grid=LINEAR_PROBE_GRID, max_iter=300).top1


def plot_curves(loss, knn, iters_per_epoch: int, out: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    if loss:
        ax1.plot([i / iters_per_epoch for i, _ in loss], [v for _, v in loss], color='tab:blue')
    ax1.set_xlabel('epoch')
    ax1.set_ylabel('NT-Xent loss')
    ax1.set_title('SimCLR training loss')
    ax1.grid(alpha=0.3)
    if knn:
        ax2.plot(*zip(*knn), marker='o', color='tab:green', label='SimCLR (epoch 0 = random init)')
        ax2.axhline(knn[0][1], ls='--', color='gray', label='random init')
    ax2.set_xlabel('epoch')
    ax2.set_ylabel('kNN top-1 (%)')
    ax2.set_title('online kNN monitor (k=200, T=0.1)')
    ax2.grid(alpha=0.3)
    ax2.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def next_steps(config: str, checkpoint: str, data_root: str, work_dir: str) -> dict:
    """The commands that evaluate, draw and use the demo's model (printed; tests run them)."""
    image = sorted(glob.glob(osp.join(data_root, 'test', '*', '*')))[0]
    return dict(
        knn_eval=f'python tools/analysis/knn_eval.py {config} {checkpoint}',
        tsne=f'python tools/analysis/visualize_tsne.py {config} {checkpoint} --out {osp.join(work_dir, "tsne.png")}',
        embed=(f'python -c "from mmsimclr import get_model, inference_model; '
               f"print(inference_model(get_model('{checkpoint}'), '{image}')['feat'].shape)\""))


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    import torch
    from mmengine.runner import Runner

    from mmsimclr import get_model
    from mmsimclr.utils import register_all_modules
    from mmsimclr.utils.vis_scalars import read_scalars
    register_all_modules(init_default_scope=False)

    os.makedirs(args.work_dir, exist_ok=True)
    data_root = prepare_data(args)
    num_classes = len(os.listdir(osp.join(data_root, 'train')))
    print(f'[demo] data: {args.train_per_class * num_classes} train / {args.test_per_class * num_classes} test '
          f'images in {data_root} ({time.time() - t0:.0f} s)', flush=True)

    cfg = build_config(args, data_root)
    runner = Runner.from_cfg(cfg)
    t_train = time.time()
    runner.train()
    train_s = time.time() - t_train

    # what the run wrote: curves, the final checkpoint and the config it was trained with
    loss, knn = read_scalars(runner.log_dir)
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    config = osp.join(args.work_dir, osp.basename(cfg.filename))  # Runner.dump_config's copy
    batch = cfg.train_dataloader.batch_size
    print('[demo] linear probes on the frozen features ...', flush=True)
    torch.manual_seed(args.seed)
    probe = {name: round(linear_probe(get_model(src, device='cpu'), data_root, 250), 2)
             for name, src in (('random_init', config), ('simclr', checkpoint))}
    png = plot_curves(loss, knn, len(runner.train_dataloader), osp.join(args.work_dir, 'demo_curves.png'))
    r = dict(epochs=runner.epoch, planned_epochs=runner.max_epochs, train_images=args.train_per_class * num_classes,
             test_images=args.test_per_class * num_classes, width=cfg.model.backbone.base_channels, batch_size=batch,
             threads=torch.get_num_threads(), train_minutes=round(train_s / 60, 2),
             knn_top1_random_init=round(knn[0][1], 2), knn_top1_simclr=round(knn[-1][1], 2),
             linear_top1_random_init=probe['random_init'], linear_top1_simclr=probe['simclr'],
             checkpoint=checkpoint, config=config, commands=next_steps(config, checkpoint, data_root, args.work_dir),
             total_minutes=round((time.time() - t0) / 60, 2), knn_history=knn)
    with open(osp.join(args.work_dir, 'demo_results.json'), 'w') as f:
        json.dump(r, f, indent=2)

    stopped = '' if r['epochs'] == r['planned_epochs'] else f' (of {r["planned_epochs"]}: time budget)'
    print('\n' + '=' * 78)
    print(f'SimCLR demo: CIFAR ResNet-18 (width {r["width"]}), {r["train_images"]} train images, {r["epochs"]} '
          f'epochs{stopped}, batch {batch}, {r["train_minutes"]:.1f} min of training')
    print(f'{"":28s}{"random init":>14s}{"SimCLR":>10s}{"gain":>9s}')
    for key, label in (('knn', 'kNN top-1 (k=200, T=0.1)'), ('linear', 'linear probe top-1')):
        a, b = r[f'{key}_top1_random_init'], r[f'{key}_top1_simclr']
        print(f'{label:28s}{a:13.2f}%{b:9.2f}%{b - a:+8.2f}')
    print(f'(test set: {r["test_images"]} test images; memory bank / probe training set: the '
          f'{r["train_images"]} training images)')
    print(f'model: {checkpoint}\nconfig: {config}\ncurves: {png}\n'
          f'results: {osp.join(args.work_dir, "demo_results.json")}\ntotal wall time: {r["total_minutes"]:.1f} min')
    print('next steps:')
    for label, key in (('evaluate (kNN)', 'knn_eval'), ('draw (t-SNE)', 'tsne'), ('embed an image', 'embed')):
        print(f'  {label}:\n    {r["commands"][key]}')
    print('=' * 78)
    return r


if __name__ == '__main__':
    main()
