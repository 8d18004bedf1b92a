"""Test-only hook: one rank of a torchrun job kills itself with SIGKILL after a given iteration, in the first
attempt only (``TORCHELASTIC_RESTART_COUNT == '0'``), so that torchrun's restart of the group runs undisturbed.

Used by ``tests/data/configs/simclr_r18_2xb8-coslr-2e_tiny-kill-rank1.py`` (tests/test_tools/test_elastic_restart.py).
Outside torchrun (no ``TORCHELASTIC_RESTART_COUNT``) it does nothing, so the same config trains the uninterrupted
reference. Before dying it writes ``killed_rank{rank}_after_iter{iteration}`` into the work dir (proof for the test
that the kill happened).
"""
import os
import os.path as osp
import signal

from mmengine.hooks import Hook

from mmsimclr.registry import HOOKS


@HOOKS.register_module()
class KillOnceHook(Hook):
    """SIGKILL rank ``rank`` right after its ``iteration``-th training iteration (1-based), first attempt only."""

    def __init__(self, rank: int = 1, iteration: int = 1):
        self.rank, self.iteration = rank, iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        first_attempt = os.environ.get('TORCHELASTIC_RESTART_COUNT') == '0'
        if first_attempt and runner.rank == self.rank and runner.iter + 1 == self.iteration:
            with open(osp.join(runner.work_dir, f'killed_rank{self.rank}_after_iter{self.iteration}'), 'w') as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
