"""Crash safety end to end: tools/train.py killed with SIGKILL at random moments and inside checkpoint writes,
resumed with ``--resume auto`` each time, ends with the weights of an uninterrupted run.

Each training runs in a process forked from this one (the imports are already done, so a start costs well under a
second) and is killed with SIGKILL: at a random moment (a timer started after a random training iteration, firing a
random fraction of two iterations' time later: inside the next iteration, or in the epoch-end checkpoint save; timed
by the run itself, so a faster or slower machine cannot make the kill miss the run), or by itself half-way through
writing a checkpoint or between a checkpoint and its ``last_checkpoint`` pointer. Data order and augmentation are
deterministic per epoch (one loader worker seeded by mmengine, checkpoints at epoch ends), so the resumed run must
reproduce the reference weights exactly.
"""
import glob
import multiprocessing as mp
import os
import os.path as osp
import random
import signal
import sys
import threading
import time

import pytest
import torch
from mmengine.logging import MMLogger

from mmsimclr.utils.checkpoint import safe_torch_load

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')
EPOCHS = 4


def _argv(work, data):
    return [TINY, '--work-dir', work, '--resume', 'auto', '--cfg-options', f'train_dataloader.dataset.data_root={data}',
            'model.backbone.stem_channels=8', 'model.backbone.base_channels=8', 'model.neck.in_channels=64',
            'model.neck.hid_channels=32', 'model.neck.out_channels=16', 'train_dataloader.num_workers=1',
            f'train_cfg.max_epochs={EPOCHS}', f'param_scheduler.1.end={EPOCHS}',
            f'param_scheduler.1.T_max={EPOCHS - 1}',
            'randomness.deterministic=True', 'default_hooks.checkpoint.max_keep_ckpts=-1']


def _suicide(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def _half_write_then_die(f, data):
    f.write(data[:len(data) // 2])
    f.flush()
    _suicide()


def _kill_after_iteration(k, fraction):
    """SIGKILL this process ``fraction`` x 2 iterations' time after training iteration ``k`` (1-based) ends."""
    from mmengine.runner import EpochBasedTrainLoop
    run_iter = EpochBasedTrainLoop.run_iter
    done = [0]

    def counting(self, idx, data_batch):
        start = time.time()
        run_iter(self, idx, data_batch)
        done[0] += 1
        if done[0] == k:
            threading.Timer(fraction * 2 * (time.time() - start), _suicide).start()

    EpochBasedTrainLoop.run_iter = counting


def _child(argv, plan, output):
    torch.set_num_threads(1)
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, 'w', closefd=False)  # (pytest replaced them) and a logger that writes there
    sys.stderr = open(2, 'w', closefd=False)
    MMLogger.get_instance(f'kill_resume_{os.getpid()}')
    if isinstance(plan, tuple):  # ('random', k, fraction)
        _kill_after_iteration(*plan[1:])
    elif plan == 'mid-write':  # killed half-way through the checkpoint file
        import mmsimclr.utils.atomic_file as atomic_file
        atomic_file._write_all = _half_write_then_die
    elif plan == 'before-pointer':  # checkpoint complete, last_checkpoint still names the previous one
        from mmengine.runner import Runner
        save = Runner.save_checkpoint

        def save_then_die(*args, **kwargs):
            save(*args, **kwargs)
            _suicide()

        Runner.save_checkpoint = save_then_die
    from tools.train import main
    main(argv)


def _train(argv, output, plan='none'):
    proc = mp.get_context('fork').Process(target=_child, args=(argv, plan, output))
    start = time.time()
    proc.start()
    proc.join()
    return proc.exitcode, time.time() - start


def _plant_truncated(work):
    """What a writer without atomic renames leaves when killed: a newer, cut-off checkpoint named by the pointer."""
    done = sorted(glob.glob(osp.join(work, 'epoch_*.pth')), key=lambda p: int(p[:-4].rsplit('_', 1)[1]))
    if not done or int(done[-1][:-4].rsplit('_', 1)[1]) >= EPOCHS:
        return None
    step = int(done[-1][:-4].rsplit('_', 1)[1]) + 1
    bad = osp.join(work, f'epoch_{step}.pth')
    with open(done[-1], 'rb') as src, open(bad, 'wb') as dst:
        dst.write(src.read()[:1000])
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(bad)
    return bad


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_matches_uninterrupted(tiny_data, tmp_path):
    ref_dir, work = str(tmp_path / 'reference'), str(tmp_path / 'killed')
    code, duration = _train(_argv(ref_dir, tiny_data), str(tmp_path / 'reference.txt'))
    assert code == 0
    print(f'uninterrupted run: {duration:.1f} s')
    reference = safe_torch_load(osp.join(ref_dir, f'epoch_{EPOCHS}.pth'))['state_dict']

    rng = random.Random(0)
    plans = ['random', 'mid-write', 'random', 'before-pointer', 'truncated', 'random', 'mid-write', 'random']
    kills, planted_all = 0, set()
    for i, plan in enumerate(plans):
        planted = _plant_truncated(work) if plan == 'truncated' else None
        output = str(tmp_path / f'run{i}.txt')
        # after a planted checkpoint: killed once it has resumed and saved the next one (a kill at a random moment
        # could come before the resume that this plan checks)
        child_plan = 'before-pointer' if plan == 'truncated' else plan
        if plan == 'random':  # after iteration 1-3 of the run's 4 per epoch: the kill lands before the run ends
            child_plan = ('random', rng.randint(1, 3), rng.uniform(0.0, 1.0))
        code, _ = _train(_argv(work, tiny_data), output, child_plan)
        kills += code == -signal.SIGKILL
        if planted:  # the resumed run skipped it with a warning (and later replaced it by a complete one)
            with open(output) as f:
                assert f'skipping checkpoint {planted}' in f.read()
        planted_all.add(planted)
        for path in glob.glob(osp.join(work, '*.pth')):  # every checkpoint on disk is complete
            if not (path in planted_all and os.path.getsize(path) == 1000):  # (ours, until a run replaces it)
                safe_torch_load(path)
    assert kills == len(plans)  # every run was killed

    code, _ = _train(_argv(work, tiny_data), str(tmp_path / 'final.txt'))
    assert code == 0
    names = sorted(osp.basename(p) for p in glob.glob(osp.join(work, '*.pth')))
    assert names == [f'epoch_{e}.pth' for e in range(1, EPOCHS + 1)]
    for path in glob.glob(osp.join(work, '*.pth')):
        safe_torch_load(path)
    assert not glob.glob(osp.join(work, '.*tmp-*')), 'temporary files of killed writers are cleaned up'
    with open(osp.join(work, 'last_checkpoint')) as f:  # names a complete checkpoint (maybe not the newest)
        safe_torch_load(f.read().strip())
    final = safe_torch_load(osp.join(work, f'epoch_{EPOCHS}.pth'))['state_dict']
    assert final.keys() == reference.keys()
    for key in reference:
        assert torch.equal(final[key], reference[key]), key
