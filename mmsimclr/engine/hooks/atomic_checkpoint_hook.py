"""``CheckpointHook`` whose checkpoints survive a crash at any moment.

mmengine's hook writes a checkpoint in place (``open(path, 'wb')``) and deletes the oldest kept checkpoint *before*
writing the new one, so a process killed during a save can leave a truncated checkpoint or (with
``max_keep_ckpts=1``) no checkpoint at all. This hook keeps every behaviour and option of ``CheckpointHook`` and
its save logic (it calls mmengine's, copies none of it), with three additions:

* checkpoints are written through mmengine's file-backend extension point, with
  :class:`~mmsimclr.utils.atomic_file.AtomicLocalBackend` (temporary file, fsync, rename) for a local folder;
* the removal of the checkpoint that ``max_keep_ckpts`` retires, and of the previous best checkpoint
  (``save_best``), which mmengine asks of the hook's file backend before saving, is held back until the new
  checkpoint (and, for the interval saves, its pointer) is written;
* the ``last_checkpoint`` pointer (which mmengine writes in place) is then replaced atomically and flushed to disk.
  Should a run be killed in the instant mmengine rewrites the pointer, ``--resume auto``
  (:func:`mmsimclr.utils.resume.find_resume_checkpoint`) still finds the newest complete checkpoint.

Temporary files left by a killed run are removed when training starts.
"""
import contextlib
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
    """Drop-in replacement for ``CheckpointHook`` (same arguments) with crash-safe writes; see the module doc.

    Args:
        interval, by_epoch, save_optimizer, save_param_scheduler, save_last, rule, greater_keys, less_keys: as
            mmengine's ``CheckpointHook``.
        filename_tmpl, published_keys, save_begin: as mmengine's ``CheckpointHook``.
        max_keep_ckpts (int): as mmengine's (default -1: keep all), but the checkpoint it retires is deleted only
            after the new checkpoint and the ``last_checkpoint`` pointer to it are written. (Checkpoints beyond a
            lowered ``max_keep_ckpts`` found when a run resumes are deleted at once, by mmengine.)
        save_best (str or list[str], optional): as mmengine's (default None). The best checkpoint is written
            through the same backend as the others, and the previous best one is deleted only after it.
        out_dir (str or Path, optional): as mmengine's (default None: ``runner.work_dir``). A local folder gets
            the atomic writes and, at the start of training, the removal of the temporary files an interrupted
            save left in it and in ``work_dir``; a URL (``scheme://...``) is written by mmengine's backend for it,
            as by ``CheckpointHook``.
        file_client_args, backend_args (dict, optional): as mmengine's (the deprecated file client's arguments,
            or the file backend's). When both are None (the default) and ``out_dir`` is local, ``backend_args``
            becomes ``dict(backend='atomic_local')`` (temporary file, fsync, rename); with either one given, the
            checkpoints are written by the backend it names (mmengine's ``local`` backend writes in place).
        **kwargs: as mmengine's (passed on to ``runner.save_checkpoint``).
    """

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

    @contextlib.contextmanager
    def _removals_held(self):
        """Within the block, removals asked of the hook's file backend are noted (``held.paths``), not done."""
        backend, held = self.file_backend, _HeldRemovals(self.file_backend)
        self.file_backend = held
        try:
            yield held
        finally:
            self.file_backend = backend

    def _remove_held(self, held: _HeldRemovals, keep) -> None:
        """Do the removals noted in ``held`` (on the main process), except of the paths in ``keep``: the
        checkpoints just written under a name that was being retired."""
        if not is_main_process():
            return
        for path in held.paths:
            if path in keep:
                continue
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # checkpoints saved by DeepSpeed are folders
                self.file_backend.rmtree(path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """mmengine's best-checkpoint save, with the previous best checkpoint removed only after the new best one is
        written (mmengine removes it first: a crash in between left no best checkpoint)."""
        with self._removals_held() as held:
            super()._save_best_checkpoint(runner, metrics)
        self._remove_held(held, {getattr(self, 'best_ckpt_path', None),
                                 *getattr(self, 'best_ckpt_path_dict', {}).values()})

    def _save_checkpoint_with_step(self, runner, step, meta):
        """mmengine's interval save, with the retired checkpoint removed only after the new one and the pointer to it
        are in place."""
        with self._removals_held() as held:
            super()._save_checkpoint_with_step(runner, step, meta)
        if is_main_process():
            atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        self._remove_held(held, {self.last_ckpt})
