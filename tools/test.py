"""Evaluate a checkpoint with an mmsimclr config (e.g. a linear-evaluation config on the val set).

CONFIG is a config file or the name of a config shipped with mmsimclr
(``benchmarks/resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k``, with or without ``.py``), as with mim.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]
    bash tools/dist_test.sh CONFIG CHECKPOINT GPUS
"""
import argparse
import json
import os
import os.path as osp
import runpy
from importlib.util import find_spec

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a checkpoint with an mmsimclr config')
    parser.add_argument('config', help='config file, or the name of a config shipped with mmsimclr')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation log goes')
    parser.add_argument('--out', help='dump the metrics to this json file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    # mmsimclr/utils/config_path.py uses the standard library only: run from its file, not through mmsimclr (torch,
    # mmengine's runner, mmpretrain: seconds), a mistyped config is reported at once
    config_path = runpy.run_path(osp.join(find_spec('mmsimclr').submodule_search_locations[0], 'utils',
                                          'config_path.py'))
    args.config = config_path['resolve_or_exit'](args.config, parser.prog)
    if not osp.isfile(args.checkpoint):
        parser.exit(2, f'{parser.prog}: error: checkpoint {args.checkpoint} does not exist (absolute: '
                    f'{osp.abspath(args.checkpoint)})\n')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmsimclr.apis.runner import build_runner, lost_rank_guard, setup_process
    setup_process(args.launcher)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint  # all the weights; a pretrained init_cfg is overwritten by them
    keep_workers = {k.split('.')[0] for k in args.cfg_options or {} if k.endswith('.num_workers')}
    runner = build_runner(cfg, args.config, args.launcher, 'test', keep_workers)
    with lost_rank_guard(runner):
        metrics = runner.test()
    if args.out and runner.rank == 0:
        with open(args.out, 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)
    return metrics


if __name__ == '__main__':
    main()
