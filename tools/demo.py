"""`make demo`: pretrain a small SimCLR model on CIFAR-10 on the CPU and show that it learned something.

    python tools/demo.py [--data PATH] [--work-dir work_dirs/demo] [--epochs N] [--max-minutes M] ...

Steps (about 10-15 minutes on 2 CPU cores with the defaults):

1. data: ``--data`` is CIFAR-10 as an image folder (``train/<class>/*``, ``test/<class>/*``) or the
   ``cifar10-jpeg.tar.gz`` archive of it (unpacked next to the work dir once); without ``--data`` mmpretrain's
   CIFAR10 is downloaded (needs internet). A class-balanced subset (``--train-per-class``, ``--test-per-class``)
   is linked into ``WORK_DIR/data`` so that the standard CIFAR-10 recipe config reads it unchanged.
2. model: the recipe ``configs/simclr_r18_1xb512-coslr-200e_cifar10.py`` (CIFAR ResNet-18, s = 0.5 colour
   distortion, no blur, LARS + warm-up + cosine, T = 0.5) scaled to the CPU: ``--width`` channels in the first
   stage (64 is the full ResNet-18; the default 16 is a quarter-width one, ~16x cheaper), batch ``--batch-size``,
   ``--epochs`` epochs (default 20), lr = 0.075 x sqrt(batch) (the paper's square-root scaling for small batches).
3. evaluation: the online kNN monitor (k = 200, T = 0.1) embeds the train subset (memory bank) and the test
   subset before training (the very same network at random initialisation) and every ``--knn-interval`` epochs;
   at the end a linear probe (L2 logistic regression on the frozen features, L2 strength chosen on held-out
   training images; ``mmsimclr.evaluation.logistic_regression``) is fitted for both.
4. output: the final table on stdout, ``WORK_DIR/demo_results.json`` and ``WORK_DIR/demo_curves.png`` (loss and
   kNN top-1 over epochs). Training shows mmengine's progress log with an ETA; a time guard stops training early
   (after an epoch) if ``--max-minutes`` would be exceeded.
"""
import argparse
import json
import os
import os.path as osp
import sys
import tarfile
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

# L2 strengths tried by the linear probe (held-out choice, as the transfer protocol; coarser than its 45 values)
LINEAR_PROBE_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', help='CIFAR-10 image folder (train/<class>/*, test/<class>/*) or a .tar.gz of it; '
                   "default: download mmpretrain's CIFAR10")
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'))
    p.add_argument('--train-per-class', type=int, default=500)
    p.add_argument('--test-per-class', type=int, default=100)
    p.add_argument('--epochs', type=int, default=20)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--width', type=int, default=16, help='channels of the first ResNet-18 stage (64 = full)')
    p.add_argument('--knn-interval', type=int, default=2)
    p.add_argument('--max-minutes', type=float, default=11.0, help='training time guard (minutes)')
    p.add_argument('--workers', type=int, default=1)
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------------------- data
def find_folder_root(path: str) -> str:
    """The folder under ``path`` (itself, or ``cifar10/``) that holds ``train/`` and ``test/``."""
    for cand in (path, osp.join(path, 'cifar10')):
        if osp.isdir(osp.join(cand, 'train')) and osp.isdir(osp.join(cand, 'test')):
            return cand
    raise FileNotFoundError(f'{path} is not a CIFAR-10 image folder: expected {path}/train/<class>/* and '
                            f'{path}/test/<class>/* (or the same under {path}/cifar10/). Pass --data with such '
                            'a folder or the cifar10-jpeg.tar.gz archive.')


def unpack_archive(archive: str, dest: str) -> str:
    """Unpack ``archive`` (.tar.gz) into ``dest`` once (a marker file records completion); returns the root."""
    marker = osp.join(dest, '.unpacked-' + osp.basename(archive))
    if not osp.exists(marker):
        print(f'[demo] unpacking {archive} into {dest} ...', flush=True)
        os.makedirs(dest, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter='data')
        open(marker, 'w').close()
    return find_folder_root(dest)


def link_subset(src_root: str, dst_root: str, per_class: dict, seed: int) -> str:
    """Symlink a class-balanced random subset of ``src_root/{split}/<class>/*`` into ``dst_root`` (fresh)."""
    import shutil

    import numpy as np
    if osp.isdir(dst_root):
        shutil.rmtree(dst_root)
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        classes = sorted(d for d in os.listdir(osp.join(src_root, split)) if osp.isdir(osp.join(src_root, split, d)))
        for c in classes:
            files = sorted(os.listdir(osp.join(src_root, split, c)))
            if len(files) < n:
                raise ValueError(f'{src_root}/{split}/{c} has {len(files)} images, fewer than the {n} asked for')
            os.makedirs(osp.join(dst_root, split, c))
            for f in sorted(rng.choice(files, size=n, replace=False)):
                os.symlink(osp.abspath(osp.join(src_root, split, c, f)), osp.join(dst_root, split, c, f))
    return dst_root


def export_cifar10_subset(download_root: str, dst_root: str, per_class: dict, seed: int) -> str:
    """Download CIFAR-10 with mmpretrain's dataset class and write a balanced PNG subset as an image folder."""
    import shutil

    import numpy as np
    from mmpretrain.datasets import CIFAR10
    from PIL import Image
    if osp.isdir(dst_root):
        shutil.rmtree(dst_root)
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        try:
            ds = CIFAR10(data_root=download_root, split=split, download=True, pipeline=[])
        except Exception as e:
            raise RuntimeError(f'Could not download CIFAR-10 into {download_root} ({e}). Without internet pass a '
                               'local copy: make demo DATA=path/to/cifar10-jpeg.tar.gz (or an image folder)') from e
        labels = np.array([ds.get_data_info(i)['gt_label'] for i in range(len(ds))])
        for c, name in enumerate(ds.metainfo['classes']):
            os.makedirs(osp.join(dst_root, split, name))
            for i in sorted(rng.choice(np.flatnonzero(labels == c), size=n, replace=False)):
                img = ds.get_data_info(int(i))['img']  # HWC, BGR-free RGB array from the pickles
                Image.fromarray(img).save(osp.join(dst_root, split, name, f'{i:05d}.png'))
    return dst_root


def prepare_data(args) -> str:
    per_class = dict(train=args.train_per_class, test=args.test_per_class)
    subset = osp.join(args.work_dir, 'data')
    if args.data is None:
        return export_cifar10_subset(osp.join(ROOT, 'data', 'cifar10-py'), subset, per_class, args.seed)
    if not osp.exists(args.data):
        raise FileNotFoundError(f'--data {args.data} does not exist (an image folder or cifar10-jpeg.tar.gz)')
    if osp.isfile(args.data):
        if not args.data.endswith(('.tar.gz', '.tgz', '.tar')):
            raise ValueError(f'--data {args.data}: expected a folder or a .tar.gz archive')
        src = unpack_archive(args.data, osp.join(osp.dirname(osp.abspath(args.work_dir)), 'cifar10-unpacked'))
    else:
        src = find_folder_root(args.data)
    return link_subset(src, subset, per_class, args.seed)


# ---------------------------------------------------------------------------------------------- training
def build_config(args, data_root: str):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'simclr_r18_1xb512-coslr-200e_cifar10.py'))
    w = args.width
    cfg.model.backbone.update(stem_channels=w, base_channels=w)
    cfg.model.neck.update(in_channels=8 * w, hid_channels=1024, out_channels=128)
    cfg.train_dataloader.update(batch_size=args.batch_size, num_workers=args.workers,
                                persistent_workers=args.workers > 0, pin_memory=False)
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.optim_wrapper.optimizer.lr = round(0.075 * args.batch_size ** 0.5, 4)
    warmup = max(1, round(args.epochs / 10))
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=warmup, convert_to_iter_based=True)]
    if args.epochs > warmup:
        cfg.param_scheduler.append(dict(type='CosineAnnealingLR', T_max=args.epochs - warmup, by_epoch=True,
                                        begin=warmup, end=args.epochs, convert_to_iter_based=True))
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=args.epochs)
    cfg.custom_hooks = [
        dict(type='KNNMonitorHook', interval=args.knn_interval or args.epochs, k=200, temperature=0.1, batch_size=250,
             num_workers=args.workers, eval_before_train=True, keep_features=True),
        dict(type='DemoTimeGuardHook', max_seconds=args.max_minutes * 60),
    ]
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=args.epochs, max_keep_ckpts=1)
    cfg.env_cfg.cudnn_benchmark = False
    cfg.randomness = dict(seed=args.seed)
    cfg.work_dir = args.work_dir
    return cfg


def register_time_guard():
    from mmengine.hooks import Hook

    from mmsimclr.registry import HOOKS

    @HOOKS.register_module(force=True)
    class DemoTimeGuardHook(Hook):
        """Stop after an epoch when one more epoch would overrun ``max_seconds`` of training."""
        priority = 'LOWEST'

        def __init__(self, max_seconds: float):
            self.max_seconds = max_seconds

        def before_train(self, runner):
            self.start = time.time()

        def after_train_epoch(self, runner):
            elapsed = time.time() - self.start
            per_epoch = elapsed / (runner.epoch + 1)
            if runner.epoch + 1 < runner.max_epochs and elapsed + per_epoch > self.max_seconds:
                runner.logger.warning(f'time guard: {elapsed / 60:.1f} min spent, one more epoch would pass the '
                                      f'{self.max_seconds / 60:.1f}-minute budget; stopping after epoch '
                                      f'{runner.epoch + 1} (the CPU is slower or busier than planned)')
                runner.train_loop.stop_training = True


# -------------------------------------------------------------------------------------------- reporting
def plot_curves(scalars_file: str, iters_per_epoch: int, knn_history, out: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = [json.loads(line) for line in open(scalars_file)]
    loss = [(r['step'] / iters_per_epoch, r['loss']) for r in rows if 'loss' in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    if loss:
        ax1.plot(*zip(*loss), color='tab:blue')
    ax1.set_xlabel('epoch')
    ax1.set_ylabel('NT-Xent loss')
    ax1.set_title('SimCLR training loss')
    ax1.grid(alpha=0.3)
    if knn_history:
        ax2.plot(*zip(*knn_history), marker='o', color='tab:green', label='SimCLR (epoch 0 = random init)')
        ax2.axhline(knn_history[0][1], ls='--', color='gray', label='random init')
    ax2.set_xlabel('epoch')
    ax2.set_ylabel('kNN top-1 (%)')
    ax2.set_title('online kNN monitor (k=200, T=0.1)')
    ax2.grid(alpha=0.3)
    ax2.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    import torch

    from mmsimclr.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    register_time_guard()
    from mmengine.runner import Runner

    from mmsimclr.evaluation.logistic_regression import evaluate_transfer

    os.makedirs(args.work_dir, exist_ok=True)
    data_root = prepare_data(args)
    num_classes = len(os.listdir(osp.join(data_root, 'train')))
    print(f'[demo] data: {args.train_per_class * num_classes} train / {args.test_per_class * num_classes} test '
          f'images in {data_root} ({time.time() - t0:.0f} s)', flush=True)

    cfg = build_config(args, data_root)
    runner = Runner.from_cfg(cfg)
    knn = [h for h in runner.hooks if type(h).__name__ == 'KNNMonitorHook'][0]
    t_train = time.time()
    runner.train()
    train_s = time.time() - t_train
    if not knn.history or knn.history[-1][0] != runner.epoch:  # stopped early by the time guard
        knn.evaluate(runner, runner.epoch)

    print('[demo] linear probes on the frozen features ...', flush=True)
    results = dict(epochs=runner.epoch, train_images=args.train_per_class * num_classes,
                   test_images=args.test_per_class * num_classes, width=args.width, batch_size=args.batch_size,
                   threads=torch.get_num_threads(), train_minutes=round(train_s / 60, 2))
    for name, feats in (('random_init', knn.initial_features), ('simclr', knn.last_features)):
        results[f'knn_top1_{name}'] = round(dict(knn.history)[0 if name == 'random_init' else runner.epoch], 2)
        results[f'linear_top1_{name}'] = round(evaluate_transfer(
            feats['train_feats'], feats['train_labels'], feats['test_feats'], feats['test_labels'],
            grid=LINEAR_PROBE_GRID, max_iter=300).top1, 2)
    iters_per_epoch = len(runner.train_dataloader)
    scalars = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    png = plot_curves(scalars, iters_per_epoch, knn.history, osp.join(args.work_dir, 'demo_curves.png'))
    results['total_minutes'] = round((time.time() - t0) / 60, 2)
    with open(osp.join(args.work_dir, 'demo_results.json'), 'w') as f:
        json.dump(dict(results, knn_history=knn.history), f, indent=2)

    r = results
    print('\n' + '=' * 78)
    print(f'SimCLR demo: CIFAR ResNet-18 (width {args.width}), {r["train_images"]} train images, {r["epochs"]} '
          f'epochs, batch {args.batch_size}, {r["train_minutes"]:.1f} min of training')
    print(f'{"":28s}{"random init":>14s}{"SimCLR":>10s}{"gain":>9s}')
    for key, label in (('knn', 'kNN top-1 (k=200, T=0.1)'), ('linear', 'linear probe top-1')):
        a, b = r[f'{key}_top1_random_init'], r[f'{key}_top1_simclr']
        print(f'{label:28s}{a:13.2f}%{b:9.2f}%{b - a:+8.2f}')
    print(f'(test set: {r["test_images"]} test images; memory bank / probe training set: the '
          f'{r["train_images"]} training images)')
    print(f'curves: {png}\nresults: {osp.join(args.work_dir, "demo_results.json")}\n'
          f'total wall time: {r["total_minutes"]:.1f} min')
    print('=' * 78)
    return results


if __name__ == '__main__':
    main()
