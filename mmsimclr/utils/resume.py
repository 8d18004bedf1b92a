"""``--resume auto``: pick the newest checkpoint of a work dir that is complete and readable.

mmengine resumes from whatever file ``work_dir/last_checkpoint`` names. A checkpoint that was truncated (a run
killed while writing it without :class:`~mmsimclr.engine.hooks.AtomicCheckpointHook`, a partial copy, a full disk)
or a pointer that names a deleted file would end the resumed run with an unhelpful unpickling error. Here every
candidate (the pointer's target and every ``epoch_N.pth`` / ``iter_N.pth``) is tried from the newest down, each
unreadable one is skipped with a warning naming it, and the first that loads is returned.

In a distributed job only rank 0 looks (:func:`resolve_resume_checkpoint`) and broadcasts its choice: ranks that
each decided alone could pick different checkpoints when a shared file system shows them different views (an NFS
attribute cache, a file written a moment ago), and would then train on from different steps.
"""
import glob
import os
import os.path as osp
import re
import time
from typing import List, Optional

import torch.distributed as dist
from mmengine.logging import print_log

from mmsimclr.utils.checkpoint import safe_torch_load

_STEP = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def _pointer_target(work_dir: str) -> Optional[str]:
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        target = f.read().strip()
    if not target:
        return None
    if osp.isabs(target) or osp.exists(target):  # mmengine writes it relative to the working directory
        return target
    return osp.join(work_dir, osp.basename(target))


def resume_candidates(work_dir: str) -> List[str]:
    """Checkpoints of ``work_dir``, newest first: by the step in ``epoch_N`` / ``iter_N`` names when they all share
    one kind, else by modification time. The pointer's target comes first among equals."""
    target = _pointer_target(work_dir)
    folders = {work_dir} | ({osp.dirname(target)} if target else set())
    paths = {osp.abspath(p) for folder in folders for p in glob.glob(osp.join(glob.escape(folder), '*.pth'))
             if _STEP.match(osp.basename(p))}
    if target:
        paths.add(osp.abspath(target))
    matches = {p: _STEP.match(osp.basename(p)) for p in paths}
    kinds = {m.group(1) for m in matches.values() if m}
    one_kind = len(kinds) == 1 and all(matches.values())
    target = osp.abspath(target) if target else None

    def key(p):
        mtime = os.stat(p).st_mtime_ns if osp.exists(p) else -1
        newness = int(matches[p].group(2)) if one_kind else mtime
        return (newness, p == target)

    return sorted(paths, key=key, reverse=True)


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The newest checkpoint of ``work_dir`` that loads (weights-only); None when there is none.

    Every candidate that is missing, truncated or unreadable is skipped with a warning naming the file.
    """
    for path in resume_candidates(work_dir):
        try:
            checkpoint = safe_torch_load(path, map_location='cpu', name=path)
            if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
                raise ValueError('it has no "state_dict"')
        except Exception as e:  # missing, truncated, foreign: say which file and why, then try an older one
            print_log(f'--resume auto: skipping checkpoint {path}: {type(e).__name__}: {str(e)[:300]}',
                      logger='current', level=30)
            continue
        del checkpoint
        return path
    return None


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def resolve_resume_checkpoint(work_dir: str, visible_within_s: float = 30.0) -> Optional[str]:
    """``--resume auto`` for every process of a job: the checkpoint rank 0 picks with
    :func:`find_resume_checkpoint` (None when there is none), the same on every rank.

    Needs the process group started (call it after the Runner is built: with NCCL, mmengine starts the group in
    ``Runner.__init__``). Without a group, or with one process, it is :func:`find_resume_checkpoint`. Rank 0's
    choice travels by ``torch.distributed.broadcast_object_list`` (a path string, or rank 0's error, so that every
    rank fails together instead of the others waiting on a collective). Every rank then checks that it can see the
    file, waiting up to ``visible_within_s`` for a lagging network file system; if one cannot, all raise a
    FileNotFoundError naming the ranks and the file.
    """
    if not _distributed():
        return find_resume_checkpoint(work_dir)
    rank = dist.get_rank()
    message = [None]
    if rank == 0:
        try:
            message[0] = ('path', find_resume_checkpoint(work_dir))
        except Exception as e:  # e.g. an unreadable work dir: the other ranks must not wait for a broadcast
            message[0] = ('error', f'rank 0 could not choose a checkpoint in {work_dir}: {type(e).__name__}: {e}')
    dist.broadcast_object_list(message, src=0)
    kind, value = message[0]
    if kind == 'error':
        raise RuntimeError(f'--resume auto: {value}')
    path = value
    if path is None:
        return None
    deadline = time.monotonic() + visible_within_s
    while not osp.isfile(path) and time.monotonic() < deadline:
        time.sleep(0.5)
    seen = [None] * dist.get_world_size()
    dist.all_gather_object(seen, osp.isfile(path))
    blind = [r for r, ok in enumerate(seen) if not ok]
    if blind:
        raise FileNotFoundError(
            f'--resume auto: rank 0 chose {path}, but rank(s) {blind} cannot see it after {visible_within_s:g} s. '
            'Every process must see the work dir at the same path (a shared file system); check its mount on the '
            'nodes of those ranks, or pass --resume PATH with a path they all can read.')
    return path


def apply_auto_resume(runner) -> Optional[str]:
    """Make an mmengine ``Runner`` built with ``resume=True, load_from=None`` resume from
    :func:`resolve_resume_checkpoint` of its work dir (or start afresh when there is none), instead of letting each
    rank pick ``last_checkpoint`` alone in ``Runner.load_or_resume``. Call it between building and ``train()``.
    Returns the checkpoint (None: a fresh start)."""
    path = resolve_resume_checkpoint(runner.work_dir)
    runner._load_from, runner._resume = path, path is not None
    if path is not None:
        print_log(f'--resume auto: resuming from {path}', logger='current')
    else:
        print_log(f'--resume auto: no complete checkpoint in {runner.work_dir}; starting from scratch',
                  logger='current')
    return path
