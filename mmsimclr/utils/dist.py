"""Distributed start-up that works with and without GPUs.

mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` unconditionally, which fails on a machine
without GPUs. When no GPU is visible we start the process group ourselves with gloo (mmengine then sees an
initialised group and skips its own start-up); with GPUs, mmengine's path (NCCL) is used unchanged.
"""
import datetime
import os

import torch
import torch.distributed as dist


def init_cpu_dist_if_needed(launcher: str, timeout_s: float = 1800) -> bool:
    """Start a gloo process group for ``launcher`` when there is no GPU. Returns True when it did.

    ``launcher`` is ``'pytorch'`` (torchrun: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set) or ``'slurm'``
    (SLURM_PROCID, SLURM_NTASKS; MASTER_ADDR/MASTER_PORT must be exported by the launch script).
    """
    if launcher == 'none' or torch.cuda.is_available() or (dist.is_available() and dist.is_initialized()):
        return False
    if launcher == 'slurm':
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
    elif launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r} needs GPUs; on CPU use --launcher pytorch (tools/dist_train.sh)')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher {launcher} needs the environment variables {missing}; start the job with '
                           'tools/dist_train.sh (torchrun) or tools/slurm_train.sh')
    dist.init_process_group(backend='gloo', timeout=datetime.timedelta(seconds=timeout_s))
    return True
