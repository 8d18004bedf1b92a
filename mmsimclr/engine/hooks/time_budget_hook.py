"""Stop an epoch-based training run before it overruns a wall-clock budget, keeping the model trained so far.

After every epoch the hook estimates the time of one more epoch as the mean epoch time of this run so far
(``elapsed / epochs_done``; evaluation hooks that run after each epoch are part of it) and stops training when
``elapsed + mean_epoch > max_minutes``. That is what a demo or a smoke test on a shared or slow machine needs:
the run ends on time, after a complete epoch, instead of being killed in the middle of one.

Stopping early must not lose the model: mmengine's ``CheckpointHook`` saves every ``interval`` epochs and at the
*planned* last epoch, so a run stopped at epoch 17 of 20 would keep nothing newer than its last interval save (or
nothing at all). When it stops training, this hook saves the checkpoint of the stopping epoch through the run's
own checkpoint hook(s) (same folder, file name, atomic backend, ``max_keep_ckpts`` and ``last_checkpoint``
pointer, so ``--resume auto`` and the evaluation tools find it), unless that hook has just saved this epoch.

Under DDP the decision is rank 0's, broadcast to every rank (timings differ between ranks; all must stop together).
"""
import time
from typing import Optional

import torch
from mmengine import dist
from mmengine.hooks import CheckpointHook, Hook

from mmsimclr.registry import HOOKS


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """Stop training after the epoch past which one more epoch would overrun ``max_minutes``; save that epoch.

    Args:
        max_minutes (float): training time budget in minutes, counted from the start of the training loop
            (after ``before_train`` work such as a kNN evaluation of the initial weights).

    Example (config)::

        custom_hooks = [dict(type='TimeBudgetHook', max_minutes=11)]
    """

    priority = 'LOWEST'  # after CheckpointHook ('VERY_LOW'): it knows whether this epoch was saved already

    def __init__(self, max_minutes: float):
        if not max_minutes > 0:
            raise ValueError(f'TimeBudgetHook: max_minutes must be > 0, got {max_minutes}')
        self.max_seconds = float(max_minutes) * 60
        self._start: Optional[float] = None
        self._start_epoch = 0
        self.stopped_at: Optional[int] = None  # epochs completed when the budget stopped training (None: it did not)

    def before_train(self, runner) -> None:
        self._start = time.perf_counter()
        self._start_epoch = runner.epoch  # > 0 when resumed: only this run's epochs count
        self.stopped_at = None

    def _over_budget(self, runner) -> bool:
        elapsed = time.perf_counter() - self._start
        mean_epoch = elapsed / (runner.epoch + 1 - self._start_epoch)
        stop = torch.tensor([float(elapsed + mean_epoch > self.max_seconds)], device=dist.get_comm_device())
        dist.broadcast(stop, src=0)  # no-op without a process group
        if stop.item():
            runner.logger.warning(
                f'TimeBudgetHook: {elapsed / 60:.1f} min of training, one more epoch (~{mean_epoch / 60:.1f} min) '
                f'would pass the {self.max_seconds / 60:g}-minute budget: stopping after epoch {runner.epoch + 1} '
                f'of {runner.max_epochs} (the machine is slower or busier than planned)')
        return bool(stop.item())

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 >= runner.max_epochs or not self._over_budget(runner):
            return
        runner.train_loop.stop_training = True
        self.stopped_at = runner.epoch + 1
        self._save_stopping_epoch(runner)

    @staticmethod
    def _save_stopping_epoch(runner) -> None:
        epoch = runner.epoch + 1
        hooks = [h for h in runner.hooks if isinstance(h, CheckpointHook) and h.by_epoch]
        for hook in hooks:
            name = hook.filename_tmpl.format(epoch)
            if hook.last_ckpt is not None and str(hook.last_ckpt).endswith(name):
                continue  # its interval fell on this epoch
            runner.logger.info(f'TimeBudgetHook: saving checkpoint at {epoch} epochs (training stopped early)')
            # the hook's own save path: its out_dir, backend, max_keep_ckpts and last_checkpoint pointer
            hook._save_checkpoint(runner)
        if not hooks:
            runner.save_checkpoint(runner.work_dir, f'epoch_{epoch}.pth')
