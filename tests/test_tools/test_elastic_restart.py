"""A lost rank heals itself: ``tools/dist_train.sh CONFIG 2`` (2 CPU ranks over gloo) in which rank 1 is killed with
SIGKILL mid-epoch finishes by itself (torchrun restarts the group, the ranks resume from the last checkpoint) with
the final weights of an uninterrupted run.

The kill is deterministic: ``tests/test_tools/kill_once_hook.py`` (in the test config) SIGKILLs rank 1 after
iteration 6 of 8 (epoch 2; ``epoch_1.pth`` is complete by then, ``epoch_2.pth`` cannot be) in torchrun's first attempt
only. Data order and augmentation are deterministic per epoch (one loader worker per rank seeded by mmengine, made
afresh each epoch; the sampler seeded by seed and epoch), as in test_kill_resume.py, so resuming from ``epoch_1.pth``
must reproduce the uninterrupted weights exactly. The uninterrupted reference goes through the same launcher
(``MAX_RESTARTS=0``, the hook removed): processes forked from pytest differ from torchrun's in the last bits of
the weights. Every process started here is killed (by pid) when the test fails or times out.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

from mmsimclr.utils.checkpoint import safe_torch_load

pytestmark = pytest.mark.distributed

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'tests', 'data', 'configs', 'simclr_r18_2xb8-coslr-2e_tiny-kill-rank1.py')
LAUNCH_TIMEOUT_S = 240  # one dist_train.sh run (well under a minute on an idle 2-core machine)


def _argv(work, data):
    return [CONFIG, '--work-dir', work, '--cfg-options', f'train_dataloader.dataset.data_root={data}']


def _processes_naming(text):
    """Pids of this user's processes whose command line contains ``text`` (a unique work dir of this test)."""
    pids = []
    for entry in os.listdir('/proc'):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f'/proc/{entry}/cmdline', 'rb') as f:
                    if text.encode() in f.read():
                        pids.append(int(entry))
            except OSError:  # gone meanwhile, or not ours to read
                pass
    return pids


def _kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _dist_train(work, data, log, max_restarts, *options):
    """``bash tools/dist_train.sh CONFIG 2 ...`` (a free port picked by the script); its exit code and duration.
    Bounded by LAUNCH_TIMEOUT_S; every process it started is gone when this returns."""
    env = dict(os.environ, PYTHON=sys.executable, MAX_RESTARTS=str(max_restarts))
    for key in ('PORT', 'MASTER_ADDR', 'MASTER_PORT', 'NNODES', 'TORCHELASTIC_RESTART_COUNT', 'RANK', 'WORLD_SIZE',
                'LOCAL_RANK', 'MMSIMCLR_DEVICE', 'OMP_NUM_THREADS'):
        env.pop(key, None)
    config, *rest = _argv(work, data)
    start = time.monotonic()
    with open(log, 'w') as out:
        launcher = subprocess.Popen(['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), config, '2', *rest, *options],
                                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = launcher.wait(LAUNCH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if launcher.poll() is None:  # torchrun stops its workers on SIGTERM; what is left is killed by pid
                os.killpg(launcher.pid, signal.SIGTERM)
                try:
                    launcher.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(launcher.pid, signal.SIGKILL)
                    launcher.wait()
            _kill_all(_processes_naming(work))  # workers (and their loader workers) run in sessions of their own
    took = time.monotonic() - start
    with open(log) as f:
        text = f.read()
    assert code == 0, f'dist_train.sh: exit code {code} after {took:.0f} s\n' + text[-5000:]
    return text, took


@pytest.mark.slow
def test_rank_killed_mid_epoch_group_restarts_and_matches_uninterrupted(tiny_data, tmp_path):
    ref_dir, work = str(tmp_path / 'reference'), str(tmp_path / 'elastic')
    text_ref, took_ref = _dist_train(ref_dir, tiny_data, str(tmp_path / 'reference.txt'), 0, 'custom_hooks=[]')
    assert 'Distributed training: True' in text_ref and "dist_cfg: {'backend': 'gloo'" in text_ref, text_ref[-3000:]
    reference = safe_torch_load(osp.join(ref_dir, 'epoch_2.pth'))['state_dict']

    text, took = _dist_train(work, tiny_data, str(tmp_path / 'elastic.txt'), 2)
    print(f'uninterrupted run {took_ref:.1f} s, run with a killed rank and one restart {took:.1f} s')

    # the kill happened where planned, torchrun restarted the group once and both ranks resumed from epoch_1.pth
    assert osp.isfile(osp.join(work, 'killed_rank1_after_iter6'))
    assert 'exitcode: -9) local_rank: 1' in text
    assert text.count('torchrun restart 1: resuming from the latest checkpoint') == 2
    assert 'torchrun restart 2' not in text
    assert f'--resume auto: resuming from {osp.join(work, "epoch_1.pth")}' in text
    assert sorted(f for f in os.listdir(work) if f.endswith('.pth')) == ['epoch_1.pth', 'epoch_2.pth']

    final = safe_torch_load(osp.join(work, 'epoch_2.pth'))['state_dict']
    assert final.keys() == reference.keys()
    for key in reference:
        assert torch.equal(final[key], reference[key]), key
