"""Evaluate a checkpoint with an mmsimclr config (e.g. a linear-evaluation config on the val set).

CONFIG is a config file or the name of a config shipped with mmsimclr
(``benchmarks/resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k``, with or without ``.py``), as with mim.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]
    bash tools/dist_test.sh CONFIG CHECKPOINT GPUS
"""
import argparse
import importlib.util
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def _config_path():
    """``mmsimclr.utils.config_path`` (standard library only). Loaded from its file unless mmsimclr is imported
    already, so that a mistyped config is reported before torch, mmengine's runner and mmpretrain load (seconds)."""
    if 'mmsimclr' in sys.modules:
        from mmsimclr.utils import config_path
        return config_path
    package = importlib.util.find_spec('mmsimclr').submodule_search_locations[0]
    spec = importlib.util.spec_from_file_location('_mmsimclr_config_path',
                                                  osp.join(package, 'utils', 'config_path.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    args.config = _config_path().resolve_or_exit(args.config, parser.prog)  # before anything heavy is imported
    if not osp.isfile(args.checkpoint):
        parser.exit(2, f'{parser.prog}: error: checkpoint {args.checkpoint} does not exist (absolute: '
                    f'{osp.abspath(args.checkpoint)})\n')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmengine.runner import Runner

    from mmsimclr.utils import init_cpu_dist_if_needed, register_all_modules
    from mmsimclr.utils.dist import DeviceError, check_device, fit_loader_workers
    try:  # a GPU machine where torch cannot use CUDA: stop now (MMSIMCLR_DEVICE=cpu to evaluate on the CPU)
        check_device(args.launcher)
    except DeviceError as e:
        sys.exit(f'mmsimclr: {e}')
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    workers_note = fit_loader_workers(cfg, keep={k.split('.')[0] for k in args.cfg_options or {}
                                                 if k.endswith('.num_workers')})
    # evaluating needs no pretrained initialisation: the checkpoint brings all the weights
    timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout', 1800)
    if init_cpu_dist_if_needed(args.launcher, timeout_s=timeout):
        cfg.env_cfg.dist_cfg.backend = 'gloo'
    runner = Runner.from_cfg(cfg)
    if workers_note:
        runner.logger.warning(workers_note)
    metrics = runner.test()
    if args.out and runner.rank == 0:
        import json
        with open(args.out, 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)
    return metrics


if __name__ == '__main__':
    main()
