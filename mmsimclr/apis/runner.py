"""The set-up ``tools/train.py`` and ``tools/test.py`` share: from a config to an mmengine Runner, safely.

What either tool needs before any real work, in this order. :func:`setup_process`, before the config is read:

1. stop at once on a GPU machine where torch cannot use CUDA (instead of training for hours on the CPU);
2. fill the registries (mmsimclr and mmpretrain modules, weights-only checkpoint loading).

:func:`build_runner`, with the config merged with the command line:

3. fit the loaders' ``num_workers`` to the CPUs one rank has (keys the user set are kept);
4. check the config (unknown types, missing data of the phase, name/value contradictions, shape mismatches) and
   exit with every problem named;
5. start a gloo process group where a launcher asks for one and there is no GPU;
6. cache the file list of an :class:`~mmsimclr.datasets.UnlabeledImageFolder` with the work dir
   (``<work_dir>/file_list.txt``: listed once, by rank 0);
7. build the Runner (:class:`~mmsimclr.engine.SimCLRRunner`: mmengine's, plus ``auto_scale_lr.rule='sqrt'``).

:func:`lost_rank_guard` then wraps ``runner.train()`` / ``runner.test()``: a rank that died or hung ends the others
promptly with one clear message (see :func:`mmsimclr.utils.dist.exit_when_a_rank_is_lost`).
"""
import os.path as osp
import sys
from typing import Iterable

from mmengine.config import Config
from mmengine.runner import Runner

from mmsimclr.evaluation.embedding import innermost_dataset_cfg
from mmsimclr.registry import RUNNERS
from mmsimclr.utils.config_check import ConfigError, check_config
from mmsimclr.utils.dist import (DeviceError, check_device, exit_when_a_rank_is_lost, fit_loader_workers,
                                 init_cpu_dist_if_needed)
from mmsimclr.utils.setup_env import register_all_modules


def dist_timeout(cfg: Config) -> float:
    """Seconds a collective waits for the other ranks (``env_cfg.dist_cfg.timeout``; torch's 1800 when unset)."""
    return cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout', 1800)


def setup_process(launcher: str = 'none') -> None:
    """Steps 1-2 above. Exits (``SystemExit`` with the message) on a GPU machine where torch cannot use CUDA."""
    try:
        check_device(launcher)
    except DeviceError as e:
        sys.exit(f'mmsimclr: {e}')
    register_all_modules(init_default_scope=False)


def build_runner(cfg: Config, config_path: str, launcher: str = 'none', phase: str = 'train',
                 keep_workers: Iterable[str] = ()) -> Runner:
    """The Runner of ``cfg`` (already merged with the command line), after steps 3-5 above (call
    :func:`setup_process` first).

    Args:
        cfg: the config to run. ``env_cfg.dist_cfg.backend`` becomes ``'gloo'`` when a CPU process group starts.
        config_path: the config file, whose own values are checked against its name.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        phase: ``'train'`` or ``'test'``: whose data must exist.
        keep_workers: loader keys (``'train_dataloader'``...) whose ``num_workers`` the user set explicitly.

    Exits (``SystemExit`` with every problem named) on a config error: the tools' way to end.
    """
    workers_note = fit_loader_workers(cfg, keep=keep_workers)
    try:
        check_config(cfg, config_path, Config.fromfile(config_path), phase=phase)
    except ConfigError as e:
        sys.exit(f'Config error: {e}')
    if init_cpu_dist_if_needed(launcher, timeout_s=dist_timeout(cfg)):
        cfg.env_cfg.dist_cfg.backend = 'gloo'
    cache_folder_listing(cfg)
    if cfg.get('runner_type'):
        runner = RUNNERS.build(cfg)
    else:
        from mmsimclr.engine.runner import SimCLRRunner
        runner = SimCLRRunner.from_cfg(cfg)
    if workers_note:
        runner.logger.warning(workers_note)
    return runner


def cache_folder_listing(cfg: Config) -> None:
    """Give every ``UnlabeledImageFolder`` of the training data (wrappers looked through) that has no
    ``file_list`` the work dir's ``file_list.txt``: the folder is listed once per run, by rank 0."""
    node = innermost_dataset_cfg((cfg.get('train_dataloader') or {}).get('dataset'))
    if isinstance(node, dict) and str(node.get('type', '')).split('.')[-1] == 'UnlabeledImageFolder':
        if node.get('file_list') is None and cfg.get('work_dir'):
            node['file_list'] = osp.join(cfg.work_dir, 'file_list.txt')


def lost_rank_guard(runner: Runner):
    """Context for the work of ``runner``: ends this process with a clear message when another rank is lost."""
    return exit_when_a_rank_is_lost(dist_timeout(runner.cfg))
