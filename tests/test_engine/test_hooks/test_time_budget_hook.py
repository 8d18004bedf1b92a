"""TimeBudgetHook in real (tiny) training runs: it stops after an epoch and the model of that epoch is saved."""
import glob
import json
import os.path as osp

import pytest
import torch

from .test_knn_monitor_hook import tiny_cfg

KNN = dict(type='KNNMonitorHook', interval=10, k=10, temperature=0.1, batch_size=32, num_workers=0, progress=False,
           num_train=16, num_test=16)


def run(repo_root, tiny_data, work_dir, max_minutes, checkpoint_interval, epochs=3, knn=True):
    from mmengine.runner import Runner
    hooks = [KNN] * knn + [dict(type='TimeBudgetHook', max_minutes=max_minutes)]
    cfg = tiny_cfg(repo_root, tiny_data, work_dir, hooks)
    cfg.train_cfg.max_epochs = epochs
    cfg.train_dataloader.dataset.indices = 32  # 2 iterations of 16 per epoch
    cfg.default_hooks.checkpoint = dict(type='AtomicCheckpointHook', interval=checkpoint_interval, max_keep_ckpts=1)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def knn_epochs(work_dir):
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    return [r['knn/epoch'] for r in map(json.loads, open(scalars[0])) if 'knn/epoch' in r]


def test_stop_early_saves_the_stopping_epoch(repo_root, tiny_data, tmp_path):
    work = str(tmp_path)
    # a budget no epoch fits in: stop after the first of 3 epochs, where the checkpoint interval (10) saves nothing
    runner = run(repo_root, tiny_data, work, max_minutes=1e-6, checkpoint_interval=10)
    assert runner.epoch == 1 and runner.iter == 2
    ckpt = osp.join(work, 'epoch_1.pth')
    assert open(osp.join(work, 'last_checkpoint')).read() == ckpt  # what --resume auto and the tools read
    saved = torch.load(ckpt, map_location='cpu', weights_only=False)
    assert saved['meta']['epoch'] == 1 and saved['meta']['iter'] == 2
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    for name, value in model.state_dict().items():
        torch.testing.assert_close(saved['state_dict'][name], value.cpu(), msg=name)
    assert knn_epochs(work) == [1]  # the kNN monitor evaluated the final model although epoch 1 was not planned
    log = open(glob.glob(osp.join(work, '*', '*.log'))[0]).read()
    assert 'stopping after epoch 1 of 3' in log


def test_stop_on_a_saved_epoch_does_not_save_twice(repo_root, tiny_data, tmp_path):
    run(repo_root, tiny_data, str(tmp_path), max_minutes=1e-6, checkpoint_interval=1, knn=False)
    log = open(glob.glob(osp.join(str(tmp_path), '*', '*.log'))[0]).read()
    assert log.count('Saving checkpoint at 1 epochs') == 1 and 'TimeBudgetHook: saving' not in log
    assert sorted(osp.basename(p) for p in glob.glob(osp.join(str(tmp_path), '*.pth'))) == ['epoch_1.pth']


def test_enough_budget_trains_every_epoch(repo_root, tiny_data, tmp_path):
    runner = run(repo_root, tiny_data, str(tmp_path), max_minutes=60, checkpoint_interval=10, epochs=2)
    assert runner.epoch == 2
    hook = [h for h in runner.hooks if type(h).__name__ == 'TimeBudgetHook'][0]
    assert hook.stopped_at is None
    assert sorted(osp.basename(p) for p in glob.glob(osp.join(str(tmp_path), '*.pth'))) == ['epoch_2.pth']
    assert knn_epochs(str(tmp_path)) == [2]


def test_budget_must_be_positive():
    from mmsimclr.engine.hooks import TimeBudgetHook
    with pytest.raises(ValueError, match='max_minutes must be > 0'):
        TimeBudgetHook(max_minutes=0)
