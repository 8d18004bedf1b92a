"""``CheckpointHook`` whose checkpoints survive a crash at any moment.

mmengine's hook writes a checkpoint in place (``open(path, 'wb')``) and deletes the oldest kept checkpoint *before*
writing the new one, so a process killed during a save can leave a truncated checkpoint or (with
``max_keep_ckpts=1``) no checkpoint at all. This hook keeps every behaviour and option of ``CheckpointHook`` and
its save logic (it calls mmengine's, copies none of it), with three additions:

* checkpoints are written through mmengine's file-backend extension point, with
  :class:`~mmsimclr.utils.atomic_file.AtomicLocalBackend` (temporary file, fsync, rename) for a local folder;
* the removal of the checkpoint that ``max_keep_ckpts`` retires, which mmengine asks of the hook's file backend
  before saving, is held back until the new checkpoint and its pointer are written;
* the ``last_checkpoint`` pointer (which mmengine writes in place) is then replaced atomically and flushed to disk.
  Should a run be killed in the instant mmengine rewrites the pointer, ``--resume auto``
  (:func:`mmsimclr.utils.resume.find_resume_checkpoint`) still finds the newest complete checkpoint.

Temporary files left by a killed run are removed when training starts.
"""
import os.path as osp
from typing import List

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from mmsimclr.registry import HOOKS
from mmsimclr.utils.atomic_file import atomic_write_text, remove_stale_temp_files


class _HeldRemovals:
    """Stands in for a file backend: ``remove`` / ``rmtree`` are noted in ``paths``, everything else passes on."""

    def __init__(self, backend):
        self.backend = backend
        self.paths: List[str] = []

    def remove(self, path) -> None:
        self.paths.append(path)

    def rmtree(self, path) -> None:
        self.paths.append(path)

    def __getattr__(self, name):
        return getattr(self.backend, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """Drop-in replacement for ``CheckpointHook`` (same arguments) with crash-safe writes; see the module doc."""

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        local = '://' not in str(out_dir)
        if local and self.backend_args is None and self.file_client_args is None:
            self.backend_args = dict(backend='atomic_local')
        super().before_train(runner)
        if local and is_main_process():
            for folder in {str(self.out_dir), runner.work_dir}:
                for tmp in remove_stale_temp_files(folder):
                    runner.logger.warning(f'Removed {tmp}, a partial checkpoint left by an interrupted run')

    def _save_checkpoint_with_step(self, runner, step, meta):
        """mmengine's save (the one method both the interval and the best-checkpoint saves go through), with the
        retired checkpoint removed only after the new one and the pointer to it are in place."""
        backend, held = self.file_backend, _HeldRemovals(self.file_backend)
        self.file_backend = held
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
        finally:
            self.file_backend = backend
        if not is_main_process():
            return
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for path in held.paths:
            if path == self.last_ckpt:  # (never the checkpoint just written)
                continue
            if backend.isfile(path):
                backend.remove(path)
            elif backend.isdir(path):  # checkpoints saved by DeepSpeed are folders
                backend.rmtree(path)
