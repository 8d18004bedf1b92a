"""Distributed start-up that works with and without GPUs.

mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` unconditionally, which fails on a machine
without GPUs. When no GPU is visible we start the process group ourselves with gloo (mmengine then sees an
initialised group and skips its own start-up); with GPUs, mmengine's path (NCCL) is used unchanged.

Before that, :func:`check_device` stops a launch on a GPU machine where torch cannot use CUDA (instead of silently
training on CPU processes) with the likely cause, unless ``MMSIMCLR_DEVICE=cpu`` asks for the CPU on purpose (see
:mod:`mmsimclr.utils.device_probe`). Under slurm without GPUs, ``MASTER_ADDR`` is the job's first node (never
127.0.0.1) and ``MASTER_PORT`` derives from the job id (two jobs on one node do not collide).
:func:`fit_loader_workers` lowers the data loaders' ``num_workers`` to the CPUs a rank has.

When a rank dies or hangs, the others block in their next collective until ``env_cfg.dist_cfg.timeout`` (10 minutes
in ``default_runtime.py``, not torch's 30) or fail at once on a closed connection; :func:`exit_when_a_rank_is_lost`
turns either into one clear message and a prompt exit. Only errors that say a peer is gone count
(:func:`is_peer_loss`); this process's own NCCL / CUDA errors propagate as they are. Under NCCL, torch's watchdog
(``TORCH_NCCL_ASYNC_ERROR_HANDLING``, default 3 = end the process without ``ncclCommAbort``) usually ends the
process first, on an asynchronous NCCL error or a collective past the timeout. Either way the process exits non-zero,
and ``tools/dist_train.sh`` (torchrun ``--max-restarts``) restarts the whole group, which resumes from the last
complete checkpoint (``tools/train.py`` treats a restart as ``--resume auto``).
"""
import contextlib
import datetime
import os
import sys
import traceback
from typing import Iterable, Optional

import torch
import torch.distributed as dist

from .device_probe import (DEVICE_ENV, DeviceError, cpus_per_rank, cuda_problem, first_hostname, requested_device,
                           slurm_port)


def check_device(launcher: str) -> str:
    """``'cuda'`` or ``'cpu'``: the device this process of a ``launcher`` job will train on. Raises
    :class:`DeviceError` (before any process group exists) when the machine or the slurm job has GPUs but torch
    cannot use CUDA, naming the likely cause; ``MMSIMCLR_DEVICE=cpu`` chooses the CPU on purpose and hides the GPUs
    from this process (``CUDA_VISIBLE_DEVICES=''``, which must happen before CUDA is first used).
    A single process (``launcher='none'``) on such a machine is not stopped (a quick check or an evaluation on the CPU
    is legitimate) but says so on stderr, with the same cause; ``MMSIMCLR_DEVICE=cuda`` makes it an error."""
    device = requested_device()
    if device == 'cpu':
        if torch.cuda.is_initialized():
            raise DeviceError(f'{DEVICE_ENV}=cpu must be set before the process starts (CUDA is already in use)')
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
        return 'cpu'
    if torch.cuda.is_available():
        return 'cuda'
    problem = cuda_problem(launcher=launcher)
    if problem and (launcher != 'none' or device == 'cuda'):
        raise DeviceError(problem)
    if problem:  # one process, device 'auto': it may go on, never silently
        print(f'mmsimclr: warning: {problem}', file=sys.stderr, flush=True)
    return 'cpu'


def prepare_slurm_env(env=os.environ, scontrol: Optional[str] = None) -> None:
    """The rendezvous variables of a slurm task, where the launch script left them unset: ``MASTER_PORT`` from the job
    id (:func:`~mmsimclr.utils.device_probe.slurm_port`) and ``MASTER_ADDR`` = the first node of ``SLURM_NODELIST``
    (mmengine's NCCL path reads both from the environment too). RANK / WORLD_SIZE / LOCAL_RANK from slurm's ids."""
    env.setdefault('MASTER_PORT', str(slurm_port(env.get('SLURM_JOB_ID'))))
    if 'MASTER_ADDR' not in env:
        nodelist = env.get('SLURM_STEP_NODELIST') or env.get('SLURM_NODELIST') or env.get('SLURM_JOB_NODELIST')
        if nodelist:
            env['MASTER_ADDR'] = first_hostname(nodelist, scontrol)
        elif env.get('SLURM_NNODES', '1') in ('', '1'):
            env['MASTER_ADDR'] = '127.0.0.1'
        else:
            raise RuntimeError(f'slurm job on {env["SLURM_NNODES"]} nodes without SLURM_NODELIST: set MASTER_ADDR '
                               'to the first node of the job')
    env.setdefault('RANK', env['SLURM_PROCID'])
    env.setdefault('WORLD_SIZE', env['SLURM_NTASKS'])
    env.setdefault('LOCAL_RANK', env.get('SLURM_LOCALID', '0'))


def init_cpu_dist_if_needed(launcher: str, timeout_s: float = 1800) -> bool:
    """Start a gloo process group for ``launcher`` when there is no GPU. Returns True when it did.

    ``launcher`` is ``'pytorch'`` (torchrun: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set) or ``'slurm'``
    (SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST; see :func:`prepare_slurm_env`). Raises :class:`DeviceError` first
    when the machine has GPUs that torch cannot use (:func:`check_device`).
    """
    if launcher == 'none' or (dist.is_available() and dist.is_initialized()):
        return False
    if launcher == 'slurm':
        prepare_slurm_env()
    if check_device(launcher) == 'cuda':
        return False
    if launcher not in ('pytorch', 'slurm'):
        raise ValueError(f'launcher {launcher!r} needs GPUs; on CPU use --launcher pytorch (tools/dist_train.sh)')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher {launcher} needs the environment variables {missing}; start the job with '
                           'tools/dist_train.sh (torchrun) or tools/slurm_train.sh')
    dist.init_process_group(backend='gloo', timeout=datetime.timedelta(seconds=timeout_s))
    return True


def fit_loader_workers(cfg, cpus: Optional[int] = None, keep: Iterable[str] = ()) -> Optional[str]:
    """Lower ``num_workers`` of ``cfg``'s train/val/test data loaders (and of custom hooks that have one) to the CPUs
    one rank has (:func:`~mmsimclr.utils.device_probe.cpus_per_rank`) where the config asks for more: the configs'
    8 workers per GPU against slurm's 1-5 CPUs per task oversubscribe the cores and slow the loaders down.
    ``keep``: config keys (``train_dataloader``...) whose ``num_workers`` the user set explicitly (left alone).
    Returns the message to log once, or None when nothing changed."""
    cpus = cpus_per_rank() if cpus is None else cpus
    places = [(key, cfg.get(key)) for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    places += [(f'custom_hooks.{i}', hook) for i, hook in enumerate(cfg.get('custom_hooks') or [])]
    changed = []
    for key, node in places:
        if key in keep or not isinstance(node, dict) or not isinstance(node.get('num_workers'), int):
            continue
        if node['num_workers'] > cpus:
            changed.append(f'{key}.num_workers {node["num_workers"]} -> {cpus}')
            node['num_workers'] = cpus
    if not changed:
        return None
    return (f'this process has {cpus} CPU(s) (SLURM_CPUS_PER_TASK, or the CPUs it may run on shared by the '
            f'processes of this node), fewer than the config\'s data-loader workers: {"; ".join(changed)}. '
            'Give each task more CPUs (slurm: CPUS_PER_TASK=...) or set num_workers with --cfg-options to choose.')


#: Fragments of the errors raised when another process of the job died or stopped responding, as gloo, NCCL and the
#: TCP store word them: gloo "Connection closed by peer" (the peer crashed), "Connection reset by peer", "Timed out
#: waiting 600000ms for recv operation" (a hung peer; see _GLOO_TIMEOUT); NCCL's ncclRemoteError "remote process
#: exited or there was a network error", its socket "Connection closed by remote peer", the watchdog's "Watchdog
#: caught collective operation timeout: WorkNCCL(...) ran for 600046 milliseconds before timing out"; the store's
#: DistNetworkError / DistStoreError (rank 0's store is gone). A data-loader timeout or a plain bug must not match.
_PEER_LOSS_SIGNS = ('connection closed by peer', 'connection closed by remote peer', 'connection reset by peer',
                    'broken pipe', 'remote process exited', 'ncclremoteerror',
                    'watchdog caught collective operation timeout', 'collective operation timed out',
                    'before timing out', 'timed out in blocking wait', 'distnetworkerror', 'diststoreerror')
#: A gloo timeout: both words, since "timed out" alone is also what a data loader says.
_GLOO_TIMEOUT = ('gloo', 'timed out')
#: Errors of this process itself, which say nothing about the others and win over the signs above (NCCL may name
#: them as the "original reason" of an aborted communicator): ncclUnhandledCudaError "unhandled cuda error",
#: ncclInvalidUsage "invalid usage", ncclInvalidArgument, ncclInternalError, CUDA failures, a port already in use.
_LOCAL_SIGNS = ('unhandled cuda error', 'ncclunhandledcudaerror', 'invalid usage', 'ncclinvalidusage',
                'ncclinvalidargument', 'invalid argument', 'ncclinternalerror', 'internal check failed',
                'cuda error', 'cuda failure', 'out of memory', 'eaddrinuse', 'address already in use')


def is_peer_loss(exc: BaseException) -> bool:
    """Whether ``exc`` (or the text of its cause chain) says that another process of the job died or hung, and
    not that this process failed by itself (see ``_PEER_LOSS_SIGNS`` and ``_LOCAL_SIGNS``)."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append(f'{type(exc).__name__} {exc}')
        exc = exc.__cause__ or exc.__context__
    text = ' '.join(parts).lower()
    if any(sign in text for sign in _LOCAL_SIGNS):
        return False
    return any(sign in text for sign in _PEER_LOSS_SIGNS) or all(word in text for word in _GLOO_TIMEOUT)


def describe_lost_rank(exc: BaseException, timeout_s: float) -> Optional[str]:
    """A clear message when ``exc`` means that another process of a distributed job died or hung; else None
    (also for NCCL errors of this process itself, e.g. "unhandled cuda error" or "invalid usage")."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    if not is_peer_loss(exc):
        return None
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return (f'rank {dist.get_rank()} of {dist.get_world_size()}: lost contact with another process of this job, '
            f'which died, was killed or hung for more than env_cfg.dist_cfg.timeout={timeout_s:g} s ({first}). '
            'Stopping this process too. Look in the other ranks\' logs for the cause. Under tools/dist_train.sh, '
            'torchrun restarts the group (MAX_RESTARTS times) and it resumes from the last complete checkpoint; '
            'otherwise restart the job with --resume auto: it continues from there.')


@contextlib.contextmanager
def exit_when_a_rank_is_lost(timeout_s: float, exit_code: int = 75):
    """Run the body; if it fails because another rank died or hung, print why and end this process at once
    (``os._exit``: a normal exit could block again in the collective clean-up). Other errors propagate."""
    try:
        yield
    except Exception as e:
        message = describe_lost_rank(e, timeout_s)
        if message is None:
            raise
        traceback.print_exc()
        print(message, file=sys.stderr, flush=True)
        try:
            from mmengine.logging import print_log
            print_log(message, logger='current', level=40)
        except Exception:  # the logger may already be gone; stderr has the message
            pass
        sys.stdout.flush()
        os._exit(exit_code)
