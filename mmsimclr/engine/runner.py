"""mmengine's Runner with the square-root learning-rate rule that SimCLR uses for small batches.

``--auto-scale-lr`` (``auto_scale_lr=dict(enable=True, base_batch_size=B)``) scales the learning rate linearly with
the total batch ``b``: ``lr * b / B`` (Goyal et al., 2017). SimCLR (Appendix B.1; google-research/simclr's
``learning_rate_scaling='sqrt'``) scales with the square root for small batches and LARS: ``lr = 0.075 * sqrt(b)``,
i.e. ``lr * sqrt(b / B)`` for an lr set at batch ``B``. Configs choose with ``auto_scale_lr.rule``:
``'linear'`` (mmengine's, the default) or ``'sqrt'``.
"""
import math
from typing import Dict, Optional

from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from mmsimclr.registry import RUNNERS

RULES = ('linear', 'sqrt')


def lr_scale(total_batch: int, base_batch: int, rule: str) -> float:
    """The factor the learning rate is multiplied by at ``total_batch`` for an lr set at ``base_batch``."""
    if rule not in RULES:
        raise ValueError(f'auto_scale_lr.rule must be one of {RULES}, got {rule!r}')
    ratio = float(total_batch) / float(base_batch)
    return math.sqrt(ratio) if rule == 'sqrt' else ratio


@RUNNERS.register_module()
class SimCLRRunner(Runner):
    """``Runner`` whose ``auto_scale_lr`` also takes ``rule='sqrt'`` (see the module docstring); used by
    ``tools/train.py`` and ``tools/test.py`` (``runner_type='SimCLRRunner'`` in a config for mmengine's own tools)."""

    def scale_lr(self, optim_wrapper: OptimWrapper, auto_scale_lr: Optional[Dict] = None) -> None:
        if not auto_scale_lr or not auto_scale_lr.get('enable', False):
            return super().scale_lr(optim_wrapper, auto_scale_lr)
        rule = auto_scale_lr.get('rule', 'linear')
        if rule == 'linear':
            return super().scale_lr(optim_wrapper, auto_scale_lr)
        loader = self._train_dataloader
        batch = loader.batch_size if isinstance(loader, DataLoader) else loader['batch_size']
        total, base = self.world_size * batch, auto_scale_lr['base_batch_size']
        factor = lr_scale(total, base, rule)
        self.logger.info(f'auto_scale_lr rule {rule!r}: the lr was set for a total batch of {base}; this run has '
                         f'{total} ({self.world_size} x {batch}): lr x sqrt({total}/{base}) = lr x {factor:.4f}')
        # mmengine's linear scaling with the base batch that gives this factor: total / base' = factor
        return super().scale_lr(optim_wrapper, dict(auto_scale_lr, base_batch_size=total / factor))
