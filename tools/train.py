"""Train a model from an mmsimclr config (SimCLR pretraining or linear evaluation).

CONFIG is a config file or the name of a config shipped with mmsimclr (``simclr_r50_16xb256-coslr-200e_in1k``,
``benchmarks/resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k``, with or without ``.py``), as with mim.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [auto|PATH]] [--amp] [--channels-last] [--compile]
                                [--cfg-options k=v ...]
    bash tools/dist_train.sh CONFIG GPUS [same options]     # torchrun; gloo CPU processes when there is no GPU
"""
import argparse
import os
import os.path as osp
import runpy
import sys
from importlib.util import find_spec

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train with an mmsimclr config')
    parser.add_argument('config', help='config file, or the name of a config shipped with mmsimclr')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the latest checkpoint in the work dir (no value or "auto") '
                        'or from the given checkpoint path')
    parser.add_argument('--amp', action='store_true', help='mixed precision (bf16 where supported, else fp16)')
    parser.add_argument('--channels-last', action='store_true',
                        help='SimCLR weights and activations in channels-last (NHWC) memory format '
                        '(same values; faster convolutions with oneDNN and cuDNN), i.e. model.channels_last=True')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the training step (mmengine cfg.compile=True); the first '
                        'iterations are slow while compiling')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr with the actual total batch size by the config\'s auto_scale_lr.rule: '
                        '"linear" (mmengine\'s, the default) or "sqrt" (SimCLR\'s for small batches)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_dataloader.batch_size=64')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    # mmsimclr/utils/config_path.py uses the standard library only: run from its file, not through mmsimclr (torch,
    # mmengine's runner, mmpretrain: seconds), a mistyped config is reported at once
    config_path = runpy.run_path(osp.join(find_spec('mmsimclr').submodule_search_locations[0], 'utils',
                                          'config_path.py'))
    args.config = config_path['resolve_or_exit'](args.config, parser.prog)
    if args.resume not in (None, 'auto') and not osp.isfile(args.resume):
        parser.exit(2, f'{parser.prog}: error: --resume {args.resume}: no such checkpoint (absolute: '
                    f'{osp.abspath(args.resume)}); pass a checkpoint file, or --resume alone for the latest one in '
                    'the work dir\n')
    restarts = os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')
    if args.resume is None and restarts.isdigit() and int(restarts) > 0:  # torchrun --max-restarts restarted us
        print(f'{parser.prog}: torchrun restart {restarts}: resuming from the latest checkpoint (--resume auto)',
              file=sys.stderr)
        args.resume = 'auto'
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_config(args) -> Config:
    """The config of ``args.config`` (a resolved file, see :func:`parse_args`) with the command-line options."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:  # bf16 without a loss scaler where native (CPU, A100/H100), else fp16 + dynamic loss scaling
        from mmsimclr.engine.optimizers import amp_optim_wrapper_cfg
        cfg.optim_wrapper = amp_optim_wrapper_cfg(cfg.optim_wrapper, int(os.environ.get('LOCAL_RANK', 0)))
    if args.channels_last:
        if not str(cfg.model.get('type', '')).endswith('SimCLR'):
            raise ValueError(f'--channels-last applies to SimCLR models, not {cfg.model.get("type")!r}')
        cfg.model.channels_last = True
    if args.compile:
        cfg.compile = True
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})['enable'] = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    from mmsimclr.apis.runner import build_runner, lost_rank_guard, setup_process
    from mmsimclr.utils.resume import apply_auto_resume
    setup_process(args.launcher)  # before the config: an unusable GPU stops here (MMSIMCLR_DEVICE)
    cfg = build_config(args)
    keep_workers = {k.split('.')[0] for k in args.cfg_options or {} if k.endswith('.num_workers')}
    runner = build_runner(cfg, args.config, args.launcher, 'train', keep_workers)
    with lost_rank_guard(runner):
        if args.resume == 'auto':  # the process group runs now: rank 0 picks the newest complete checkpoint
            apply_auto_resume(runner)  # (truncated or unreadable ones skipped with a warning), all ranks use it
        runner.train()
    return runner


if __name__ == '__main__':
    main()
