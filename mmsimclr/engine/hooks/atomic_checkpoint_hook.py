"""``CheckpointHook`` whose files survive a crash at any moment.

mmengine's hook writes a checkpoint in place (``open(path, 'wb')``), overwrites the ``last_checkpoint`` pointer in
place, and deletes the oldest kept checkpoint *before* writing the new one, so a process killed during a save can
leave a truncated checkpoint, an empty pointer, or (with ``max_keep_ckpts=1``) no checkpoint at all. This hook
keeps every other behaviour and option of ``CheckpointHook`` and changes three things:

* checkpoints go through :class:`~mmsimclr.utils.atomic_file.AtomicLocalBackend` (temporary file, fsync, rename)
  when they are saved to a local folder;
* the ``last_checkpoint`` pointer is replaced atomically, after the checkpoint it names is complete;
* the checkpoint that ``max_keep_ckpts`` retires is deleted only after the new one is in place.

Temporary files left by a killed run are removed when training starts.
"""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from mmsimclr.registry import HOOKS
from mmsimclr.utils.atomic_file import atomic_write_text, remove_stale_temp_files


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

    def _retire_path(self, step) -> str:
        return self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(step))

    def _save_checkpoint_with_step(self, runner, step, meta):
        retired = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            # (the same step can be saved twice in one epoch: the interval save and a new best)
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                retired = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                               backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        if retired is not None and retired != step:
            path = self._retire_path(retired)
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # checkpoints saved by DeepSpeed are folders
                self.file_backend.rmtree(path)
