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
    """``Runner`` whose ``auto_scale_lr`` also takes ``rule='sqrt'`` (see the module docstring).

    Used by ``tools/train.py`` and ``tools/test.py`` (``runner_type='SimCLRRunner'`` in a config for mmengine's own
    tools). Built like mmengine's ``Runner``, usually with ``SimCLRRunner.from_cfg(cfg)``.

    Args:
        model, work_dir, train_dataloader, val_dataloader, test_dataloader: as mmengine's ``Runner``.
        train_cfg, val_cfg, test_cfg, optim_wrapper, param_scheduler, val_evaluator, test_evaluator: as mmengine's
            ``Runner``.
        default_hooks, custom_hooks, data_preprocessor, load_from, resume, launcher, env_cfg: as mmengine's
            ``Runner``.
        log_processor, log_level, visualizer, default_scope, randomness, experiment_name, cfg: as mmengine's
            ``Runner``.
        auto_scale_lr (dict, optional): as mmengine's (``enable``, ``base_batch_size``: the total batch the
            configured lr was set for), plus ``rule``: ``'linear'`` (the default, mmengine's ``lr * b / B``) or
            ``'sqrt'`` (``lr * sqrt(b / B)``, SimCLR's rule for LARS and small batches), with ``b`` = world size x
            the train dataloader's ``batch_size``; another rule raises ``ValueError`` when ``enable`` is True.
            Nothing is scaled unless ``enable`` is True. Defaults to None.
    """

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
