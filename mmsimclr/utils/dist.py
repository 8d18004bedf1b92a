"""Distributed start-up that works with and without GPUs.

mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` unconditionally, which fails on a machine
without GPUs. When no GPU is visible we start the process group ourselves with gloo (mmengine then sees an
initialised group and skips its own start-up); with GPUs, mmengine's path (NCCL) is used unchanged.

When a rank dies or hangs, the others block in their next collective until ``env_cfg.dist_cfg.timeout`` (10 minutes
in ``default_runtime.py``, not torch's 30) or fail at once on a closed connection; :func:`exit_when_a_rank_is_lost`
turns either into one clear message and a prompt exit.
"""
import contextlib
import datetime
import os
import sys
import traceback
from typing import Optional

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


#: Fragments of the errors gloo / NCCL / the TCP store raise when another rank died or stopped responding.
#: (Specific on purpose: a data-loader timeout or a plain bug must not be reported as a lost rank.)
_LOST_RANK_SIGNS = ('gloo', 'nccl', 'connection reset by peer', 'connection closed by peer', 'broken pipe',
                    'distbackenderror', 'diststoreerror', 'distnetworkerror')


def describe_lost_rank(exc: BaseException, timeout_s: float) -> Optional[str]:
    """A clear message when ``exc`` means that another process of a distributed job died or hung; else None."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    text = f'{type(exc).__name__} {exc}'.lower()
    if not any(sign in text for sign in _LOST_RANK_SIGNS):
        return None
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return (f'rank {dist.get_rank()} of {dist.get_world_size()}: lost contact with another process of this job, '
            f'which died, was killed or hung for more than env_cfg.dist_cfg.timeout={timeout_s:g} s ({first}). '
            'Stopping this process too. Look in the other ranks\' logs for the cause, then restart the job with '
            '--resume auto: it continues from the last complete checkpoint.')


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
