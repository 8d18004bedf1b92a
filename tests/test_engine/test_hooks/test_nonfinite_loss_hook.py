"""NonFiniteLossHook: a NaN loss stops training at that iteration before the weights change (or the step is
skipped), and no checkpoint is written after it."""
import os.path as osp

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmsimclr.engine.hooks import NonFiniteLossError

BAD_ITER = 3  # 1-based iteration whose loss is NaN


class _ToyModel(BaseModel):

    def __init__(self, bad_iter):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)
        self.calls = 0
        self.bad_iter = bad_iter

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.calls += 1
        loss = self.linear(inputs).pow(2).mean()
        if self.calls == self.bad_iter:
            loss = loss * float('nan')
        return dict(loss=loss)


def _runner(tmp_path, action, bad_iter=BAD_ITER, checkpoint=None):
    """A 6-iteration runner on a linear model whose loss is NaN at ``bad_iter``; checkpoints every iteration."""
    data = [dict(inputs=torch.tensor([1.0, 2.0]))] * 6
    return Runner(
        model=_ToyModel(bad_iter), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False), batch_size=1,
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=6),
        default_hooks=dict(checkpoint=checkpoint or dict(type='AtomicCheckpointHook', interval=1, by_epoch=False),
                           nan_guard=dict(type='NonFiniteLossHook', action=action), logger=None),
        default_scope='mmsimclr')


def test_stop_names_iteration_and_last_good_checkpoint(tmp_path):
    runner = _runner(tmp_path, 'stop')
    before = {}

    def remember(module, args):
        before.update({k: v.clone() for k, v in module.state_dict().items()})

    runner.model.register_forward_pre_hook(remember)
    with pytest.raises(NonFiniteLossError, match=f'iteration {BAD_ITER} ') as info:
        runner.train()
    last_good = osp.join(str(tmp_path), f'iter_{BAD_ITER - 1}.pth')
    assert last_good in str(info.value)
    assert not osp.exists(osp.join(str(tmp_path), f'iter_{BAD_ITER}.pth'))  # nothing saved after the bad step
    for key, value in runner.model.state_dict().items():  # the bad step never reached the weights
        assert torch.equal(value, before[key]) and torch.isfinite(value).all()


def test_skip_drops_the_step_and_trains_on(tmp_path):
    runner = _runner(tmp_path, 'skip')
    runner.train()
    nan_guard = next(h for h in runner.hooks if type(h).__name__ == 'NonFiniteLossHook')
    assert nan_guard.skipped == [BAD_ITER]
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    assert osp.isfile(osp.join(str(tmp_path), 'iter_6.pth'))


def test_unknown_action_is_refused():
    from mmsimclr.engine.hooks import NonFiniteLossHook
    with pytest.raises(ValueError, match='stop'):
        NonFiniteLossHook(action='ignore')
