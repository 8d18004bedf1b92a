"""Stop (or skip the step) the moment the loss or the gradients become NaN or Inf.

A NaN loss reaches the weights through the optimizer step, and every later checkpoint then holds NaN weights, so a
days-long run would silently lose everything after it. The check runs as a ``torch.optim.Optimizer`` step pre-hook
(torch's extension point), i.e. after ``backward`` and before the weights change:

* ``action='stop'`` (default): raise :class:`NonFiniteLossError` naming the iteration, the first parameter with a
  non-finite gradient and the last checkpoint written (nothing is saved after it, and the weights in memory are
  those before the bad step);
* ``action='skip'``: drop this step's gradients (the optimizer then leaves every parameter and its state untouched),
  log the iteration, and go on.

Mixed precision with a dynamic loss scale already skips steps with Inf gradients (the scaler never calls
``optimizer.step`` then), so those steps are not reported here.
"""
from typing import List, Optional

import torch
from mmengine.hooks import Hook

from mmsimclr.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """The loss or a gradient became NaN/Inf during training."""


def _optimizers(optim_wrapper) -> List[torch.optim.Optimizer]:
    if hasattr(optim_wrapper, 'optim_wrappers'):  # OptimWrapperDict
        return [w.optimizer for w in optim_wrapper.optim_wrappers.values()]
    return [optim_wrapper.optimizer]


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Guard against NaN/Inf losses and gradients; see the module doc.

    Args:
        action: ``'stop'`` (raise :class:`NonFiniteLossError`) or ``'skip'`` (drop the step and continue).
    """

    priority = 'ABOVE_NORMAL'  # before CheckpointHook, so nothing is saved after a bad step

    def __init__(self, action: str = 'stop'):
        if action not in ('stop', 'skip'):
            raise ValueError(f'NonFiniteLossHook: action must be "stop" or "skip", got {action!r}')
        self.action = action
        self.skipped: List[int] = []
        self._handles = []
        self._runner = None
        self._names = {}

    # ---------------------------------------------------------------- wiring
    def before_train(self, runner) -> None:
        self._runner = runner
        self._names = {id(p): n for n, p in runner.model.named_parameters()}
        self._remove_handles()
        for optimizer in _optimizers(runner.optim_wrapper):
            self._handles.append(optimizer.register_step_pre_hook(self._before_step))

    def after_train(self, runner) -> None:
        self._remove_handles()
        if self.skipped:
            runner.logger.warning(f'NonFiniteLossHook skipped {len(self.skipped)} step(s) with NaN/Inf gradients '
                                  f'at iterations {self.skipped[:20]}')

    def _remove_handles(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ---------------------------------------------------------------- checks
    def _where(self) -> str:
        runner = self._runner
        return f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})'

    def _last_checkpoint(self) -> str:
        last = self._runner.message_hub.get_info('last_ckpt')
        return f'the last good checkpoint is {last}' if last else 'no checkpoint has been written yet'

    def _stop(self, what: str, before_step: bool = True) -> None:
        when = 'before this step changed the weights' if before_step else 'before anything after it was saved'
        raise NonFiniteLossError(
            f'{what} at {self._where()}. Training stopped {when}; '
            f'{self._last_checkpoint()}. Lower the learning rate or check the data, then resume with '
            '--resume auto; or set default_hooks.nan_guard.action="skip" to skip such steps.')

    def _before_step(self, optimizer, args, kwargs) -> Optional[tuple]:
        params = [p for group in optimizer.param_groups for p in group['params'] if p.grad is not None]
        if not params:
            return None
        norms = torch._foreach_norm([p.grad for p in params])
        if bool(torch.isfinite(torch.stack([n.float().to(norms[0].device) for n in norms])).all()):
            return None
        bad = next(p for p, n in zip(params, norms) if not torch.isfinite(n))
        name = self._names.get(id(bad), 'a parameter')
        if self.action == 'stop':
            self._stop(f'The loss or the gradients became NaN/Inf (first non-finite gradient: {name})')
        for p in params:
            p.grad = None
        self.skipped.append(self._runner.iter + 1)
        self._runner.logger.warning(f'Skipped the optimizer step at {self._where()}: non-finite gradient of {name}')
        return None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not isinstance(outputs, dict):
            return
        for key, value in outputs.items():
            value = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
            if not bool(torch.isfinite(value).all()):
                scaled = getattr(runner.optim_wrapper, 'loss_scaler', None) is not None
                if self.action == 'stop' and not scaled:
                    self._stop(f'{key} = {value.float().mean().item()}', before_step=False)
                runner.logger.warning(f'{key} = {value.float().mean().item()} at {self._where()}')
                return
