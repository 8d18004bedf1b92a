"""t-SNE map of a checkpoint's backbone embedding, coloured by class, saved as a PNG.

    python tools/analysis/visualize_tsne.py CONFIG CHECKPOINT [--out tsne.png] [--split test] [--num 2000]
        [--data-root PATH] [--feature feat|proj] [--perplexity 30] [--cfg-options k=v ...]

Embeds ``--num`` random images of the split (no augmentation; CHECKPOINT may be ``random``), reduces the
L2-normalised features (n, D) to (n, 2) with scikit-learn's t-SNE (PCA initialisation, cosine metric) and draws
one colour per class. The 2-D points and labels are also written next to the PNG (.npz) for re-plotting.
"""
import argparse
import os
import os.path as osp
import time

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger

from mmsimclr.apis import get_model
from mmsimclr.evaluation import build_eval_loader, build_subset, eval_dataset_cfgs, extract_dataset_features


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint', help='checkpoint .pth, or "random" for the randomly initialised network')
    p.add_argument('--out', default='tsne.png', help='PNG to write')
    p.add_argument('--split', default='test', choices=['train', 'test'])
    p.add_argument('--num', type=int, default=2000, help='random images to embed (default 2000)')
    p.add_argument('--data-root', help='dataset root replacing the config\'s')
    p.add_argument('--feature', default='feat')
    p.add_argument('--perplexity', type=float, default=30.0)
    p.add_argument('--batch-size', type=int, default=256)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--title', help='plot title (default: checkpoint name)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def tsne_2d(feats, perplexity: float = 30.0, seed: int = 0):
    """``(n, D)`` features -> ``(n, 2)`` t-SNE coordinates (cosine distances of the normalised features)."""
    try:
        from sklearn.manifold import TSNE
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError('visualize_tsne needs scikit-learn: pip install scikit-learn '
                          '(listed in requirements/runtime.txt)') from e
    x = np.asarray(feats, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    perplexity = min(perplexity, max(2.0, (len(x) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init='pca', metric='cosine', random_state=seed,
                n_jobs=1).fit_transform(x)


def plot_embedding(points, labels, classes, out: str, title: str = '') -> str:
    """Scatter ``points (n, 2)`` coloured by ``labels (n,)`` with a class legend; writes ``out`` (PNG)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    labels = np.asarray(labels)
    cmap = plt.get_cmap('tab10' if len(classes) <= 10 else 'tab20')
    fig, ax = plt.subplots(figsize=(7, 6), dpi=120)
    for c, name in enumerate(classes):
        sel = labels == c
        if sel.any():
            ax.scatter(points[sel, 0], points[sel, 1], s=4, color=cmap(c % cmap.N), label=str(name), alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.legend(markerscale=3, fontsize=8, loc='center left', bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv=None) -> str:
    args = parse_args(argv)
    logger = MMLogger.get_instance('mmsimclr_tsne', log_level='INFO')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    # only the backbone must be in the checkpoint (a SimCLR one may feed a linear config); 'random': no weights
    model = get_model(cfg, pretrained=False if args.checkpoint == 'random' else args.checkpoint, strict=False)
    dataset = build_subset(eval_dataset_cfgs(cfg, args.data_root)[args.split], args.num, args.seed)
    feats, labels = extract_dataset_features(model, build_eval_loader(dataset, args.batch_size, args.workers),
                                     args.feature, True, logger, args.split)
    start = time.time()
    points = tsne_2d(feats.numpy(), args.perplexity, args.seed)
    logger.info(f't-SNE of {len(points)} x {feats.shape[1]} features in {time.time() - start:.1f} s')
    classes = dataset.metainfo.get('classes') or [str(c) for c in range(int(labels.max()) + 1)]
    title = args.title or (f't-SNE of {args.feature} ({osp.basename(args.checkpoint)}, {len(points)} '
                           f'{args.split} images)')
    plot_embedding(points, labels.numpy(), classes, args.out, title)
    np.savez(osp.splitext(args.out)[0] + '.npz', points=points, labels=labels.numpy(), classes=np.array(classes))
    logger.info(f'wrote {args.out}')
    return args.out


if __name__ == '__main__':
    main()
