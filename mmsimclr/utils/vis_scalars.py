"""What a run logged: the rows of mmengine's ``LocalVisBackend`` file ``<log_dir>/vis_data/scalars.json``.

One JSON object per line, as mmengine writes them: training rows (``step`` = iteration, ``loss``, ``lr``, ``time``
...) and, from :class:`mmsimclr.engine.hooks.KNNMonitorHook`, evaluation rows (``knn/epoch``, ``knn/top1``,
``knn/time_s``). Standard library only.
"""
import json
import os.path as osp
from typing import List, Tuple


def scalars_file(log_dir: str) -> str:
    """``<log_dir>/vis_data/scalars.json`` (``log_dir``: ``runner.log_dir``, the run's timestamped folder)."""
    return osp.join(log_dir, 'vis_data', 'scalars.json')


def read_scalar_rows(log_dir: str) -> List[dict]:
    """Every row of the run's ``scalars.json``, in the order logged.

    Raises:
        FileNotFoundError: no ``scalars.json`` (the message names the file and what writes it).
    """
    path = scalars_file(log_dir)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist: pass the log folder of a run (runner.log_dir, '
                                '<work_dir>/<timestamp>) whose config has LocalVisBackend in its visualizer')
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_scalars(log_dir: str) -> Tuple[List[Tuple[int, float]], List[Tuple[int, float]]]:
    """``(loss, knn)``: ``[(iteration, loss)]`` of training and ``[(epoch, kNN top-1 %)]`` of the kNN monitor
    (epoch 0: before training, the random initialisation), from the run's ``scalars.json``."""
    rows = read_scalar_rows(log_dir)
    loss = [(r['step'], r['loss']) for r in rows if 'loss' in r]
    knn = [(int(r['knn/epoch']), r['knn/top1']) for r in rows if 'knn/top1' in r]
    return loss, knn
