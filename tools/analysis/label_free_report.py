"""The label-free measures of a run as a Markdown table, with their rank correlation to kNN accuracy.

    python tools/analysis/label_free_report.py WORK_DIR_OR_LOG_DIR [--png OUT.png]

Reads the run's ``vis_data/scalars.json`` (the newest run in a work dir): the rows of
:class:`~mmsimclr.engine.hooks.LabelFreeMonitorHook` (``labelfree/*``), the training loss (mean over each epoch's
iterations) and, when a :class:`~mmsimclr.engine.hooks.KNNMonitorHook` ran too, ``knn/top1``. Prints one row per
measured epoch and, with kNN present, Spearman's rank correlation of each measure with kNN accuracy over the epochs
(which measures rise and fall with the accuracy that needs labels). ``--png`` redraws the curves.
"""
import argparse
import glob
import os.path as osp
from typing import Dict, List

from mmsimclr.evaluation.label_free import MEASURES
from mmsimclr.utils.vis_scalars import read_scalar_rows


def log_dir_of(path: str) -> str:
    """``path`` itself if it holds ``vis_data/scalars.json``, else the newest run folder inside it."""
    if osp.isfile(osp.join(path, 'vis_data', 'scalars.json')):
        return path
    runs = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not runs:
        raise FileNotFoundError(f'No vis_data/scalars.json in {path} or its run folders: pass a work dir or a log '
                                'dir of a run with LabelFreeMonitorHook')
    return osp.dirname(osp.dirname(runs[-1]))


def epoch_rows(log_dir: str) -> List[Dict[str, float]]:
    """One dict per measured epoch: ``epoch``, the four measures, ``rankme_max``, ``loss`` (epoch mean; None for
    epoch 0) and ``knn`` (None when not measured)."""
    rows = read_scalar_rows(log_dir)
    measured = {int(r['labelfree/epoch']): r for r in rows if 'labelfree/epoch' in r}
    knn = {int(r['knn/epoch']): r['knn/top1'] for r in rows if 'knn/epoch' in r}
    losses = [(r['step'], r['loss']) for r in rows if 'loss' in r]
    out = []
    previous_step = 0
    for epoch in sorted(measured):
        r = measured[epoch]
        step = r['step']
        window = [loss for s, loss in losses if previous_step < s <= step]
        out.append(dict(epoch=epoch, **{k: r[f'labelfree/{k}'] for k in MEASURES + ('rankme_max', )},
                        loss=sum(window) / len(window) if window and epoch > 0 else None, knn=knn.get(epoch)))
        previous_step = step
    return out


def spearman(rows: List[dict]) -> Dict[str, float]:
    """Spearman's rho of each measure (and the loss) with kNN accuracy over the epochs where both exist."""
    from scipy.stats import spearmanr
    out = {}
    for key in MEASURES + ('loss', ):
        pairs = [(r[key], r['knn']) for r in rows if r.get(key) is not None and r.get('knn') is not None]
        if len(pairs) >= 3:
            out[key] = float(spearmanr(*zip(*pairs)).statistic)
    return out


def markdown(rows: List[dict]) -> str:
    def fmt(v, spec):
        return '-' if v is None else format(v, spec)

    lines = ['| epoch | loss | RankMe | alignment | uniformity | contrast_acc (%) | kNN top-1 (%) |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["epoch"]} | {fmt(r["loss"], ".3f")} | {r["rankme"]:.1f} / {r["rankme_max"]:.0f} | '
                     f'{r["alignment"]:.3f} | {r["uniformity"]:.3f} | {r["contrast_acc"]:.1f} | '
                     f'{fmt(r["knn"], ".1f")} |')
    rho = spearman(rows)
    if rho:
        lines += ['', 'Spearman rank correlation with kNN top-1 over the epochs: ' +
                  ', '.join(f'{k} {v:+.2f}' for k, v in rho.items())]
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('run', help='work dir (its newest run) or log dir of a run')
    p.add_argument('--png', help='also draw the curves into this PNG')
    args = p.parse_args(argv)
    rows = epoch_rows(log_dir_of(args.run))
    if not rows:
        raise SystemExit(f'{args.run}: no label-free measurements logged (is LabelFreeMonitorHook in the config?)')
    print(markdown(rows))
    if args.png:
        from mmsimclr.engine.hooks.label_free_monitor_hook import plot_label_free
        print(f'wrote {plot_label_free(rows, args.png)}')


if __name__ == '__main__':
    main()
