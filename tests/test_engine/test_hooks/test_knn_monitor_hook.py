"""KNNMonitorHook in a real (tiny) training run, and distributed feature extraction (2 gloo processes)."""
import glob
import json
import os
import os.path as osp

import pytest
import torch

SMALL_MODEL = dict(backbone=dict(stem_channels=8, base_channels=8),
                   neck=dict(in_channels=64, hid_channels=32, out_channels=16))


def tiny_cfg(repo_root, data_root, work_dir, hooks):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py'))
    cfg.merge_from_dict(dict(model=SMALL_MODEL))
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.train_cfg.max_epochs = 2
    cfg.work_dir = work_dir
    cfg.custom_hooks = hooks
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10)
    return cfg


def knn_rows(work_dir):
    """The kNN rows of the run's ``vis_data/scalars.json`` (mmengine's LocalVisBackend)."""
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert len(scalars) == 1
    rows = [json.loads(line) for line in open(scalars[0])]
    return [r for r in rows if 'knn/top1' in r], rows


def test_hook_logs_knn_to_logger_and_scalars(repo_root, tiny_data, tmp_path):
    from mmengine.runner import Runner
    hook = dict(type='KNNMonitorHook', interval=1, k=10, temperature=0.1, batch_size=32, num_workers=0,
                eval_before_train=True, num_train=48, progress=False)
    runner = Runner.from_cfg(tiny_cfg(repo_root, tiny_data, str(tmp_path), [hook]))
    runner.train()
    knn, rows = knn_rows(str(tmp_path))
    assert [r['knn/epoch'] for r in knn] == [0, 1, 2]
    for r in knn:
        assert 0.0 <= r['knn/top1'] <= 100.0
        # 64 test queries: every accuracy is a multiple of 1/64
        assert abs(r['knn/top1'] * 64 / 100 - round(r['knn/top1'] * 64 / 100)) < 1e-6
    assert runner.message_hub.get_scalar('knn/top1').current() == pytest.approx(knn[-1]['knn/top1'])
    assert knn[-1]['step'] == runner.iter == 8  # 2 epochs x 64 images / 16
    assert any('loss' in r for r in rows)
    log = open(glob.glob(osp.join(str(tmp_path), '*', '*.log'))[0]).read()
    assert 'Epoch(knn) [2]  knn/top1:' in log
    assert 'memory bank 48 images, queries 64 images' in log


def counting_hook(**kwargs):
    """A KNNMonitorHook whose evaluation only records the epoch (the schedule is what is tested)."""
    from mmsimclr.engine.hooks import KNNMonitorHook

    class Counting(KNNMonitorHook):
        def _build_loaders(self, runner):
            return None

        def evaluate(self, runner, epoch):
            self.epochs.append(epoch)
            self._evaluated_epoch = epoch
            return 0.0

    hook = Counting(**kwargs)
    hook.epochs = []
    return hook


class FakeRunner:
    max_epochs = 5
    epoch = 0


def test_hook_interval_skips_epochs():
    from mmsimclr.engine.hooks import KNNMonitorHook
    hook, runner = counting_hook(interval=2), FakeRunner()
    hook.before_train(runner)
    for e in range(5):
        runner.epoch = e
        hook.after_train_epoch(runner)
    runner.epoch = 5  # the loop has ended: epochs completed
    hook.after_train(runner)
    assert hook.epochs == [2, 4, 5]  # every 2nd epoch and the last one, not twice
    with pytest.raises(ValueError, match='temperature'):
        KNNMonitorHook(temperature=0)


def test_hook_evaluates_the_final_model_when_training_stops_early():
    hook, runner = counting_hook(interval=2), FakeRunner()
    hook.before_train(runner)
    for e in range(3):  # stopped (time budget, early stopping) after epoch 3 of 5
        runner.epoch = e
        hook.after_train_epoch(runner)
    runner.epoch = 3
    hook.after_train(runner)
    assert hook.epochs == [2, 3]


def _dist_worker(rank, world, port, repo_root, data_root, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    import torch.distributed as tdist
    tdist.init_process_group('gloo', rank=rank, world_size=world)
    from mmengine.config import Config

    from mmsimclr.evaluation.embedding import build_eval_loader, build_subset, derive_dataset_cfg
    from mmsimclr.evaluation.knn import extract_features
    from mmsimclr.registry import MODELS
    from mmsimclr.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py'))
    cfg.merge_from_dict(dict(model=SMALL_MODEL))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    calls = []
    original = model.embed
    model.embed = lambda x: (calls.append(x.shape[0]), original(x))[1]
    ds_cfg = derive_dataset_cfg(dict(cfg.train_dataloader.dataset, data_root=data_root), 'test')
    loader = build_eval_loader(build_subset(ds_cfg, 50), batch_size=8, num_workers=0)  # 50: uneven shards
    feats, labels = extract_features(model, loader, progress=False)
    torch.save(dict(feats=feats, labels=labels, embedded=sum(calls), state=model.state_dict()),
               osp.join(out_dir, f'rank{rank}.pth'))
    tdist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.distributed
def test_extract_features_ddp_embeds_each_image_once(repo_root, tiny_data, tmp_path):
    import socket

    import torch.multiprocessing as mp

    from mmsimclr.evaluation.embedding import build_eval_loader, build_subset, derive_dataset_cfg
    from mmsimclr.evaluation.knn import extract_features
    from mmsimclr.registry import MODELS
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.start_processes(_dist_worker, args=(2, port, repo_root, tiny_data, str(tmp_path)), nprocs=2,
                       start_method='fork')
    r0, r1 = (torch.load(tmp_path / f'rank{r}.pth', weights_only=True) for r in (0, 1))
    assert r0['embedded'] + r1['embedded'] == 50  # each image embedded by exactly one rank
    assert r0['embedded'] == 25
    torch.testing.assert_close(r0['feats'], r1['feats'])  # every rank got the gathered result

    # single-process reference with the same weights
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py'))
    cfg.merge_from_dict(dict(model=SMALL_MODEL))
    model = MODELS.build(cfg.model)
    model.load_state_dict(r0['state'])
    ds_cfg = derive_dataset_cfg(dict(cfg.train_dataloader.dataset, data_root=tiny_data), 'test')
    ref_feats, ref_labels = extract_features(
        model, build_eval_loader(build_subset(ds_cfg, 50), batch_size=8, num_workers=0), progress=False)
    torch.testing.assert_close(r0['feats'], ref_feats, rtol=1e-4, atol=1e-5)
    assert torch.equal(r0['labels'], ref_labels)
