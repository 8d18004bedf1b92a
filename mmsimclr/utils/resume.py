"""``--resume auto``: pick the newest checkpoint of a work dir that is complete and readable.

mmengine resumes from whatever file ``work_dir/last_checkpoint`` names. A checkpoint that was truncated (a run
killed while writing it without :class:`~mmsimclr.engine.hooks.AtomicCheckpointHook`, a partial copy, a full disk)
or a pointer that names a deleted file would end the resumed run with an unhelpful unpickling error. Here every
candidate (the pointer's target and every ``epoch_N.pth`` / ``iter_N.pth``) is tried from the newest down, each
unreadable one is skipped with a warning naming it, and the first that loads is returned.
"""
import glob
import os
import os.path as osp
import re
from typing import List, Optional

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
