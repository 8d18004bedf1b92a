"""--resume auto picks the newest complete checkpoint and names every one it skips; atomic writes never leave a
partial file in place."""
import os
import os.path as osp
import signal

import pytest
import torch

import mmsimclr.utils.atomic_file as atomic_file
from mmsimclr.utils.atomic_file import atomic_write_bytes, remove_stale_temp_files, temp_path_for
from mmsimclr.utils.checkpoint import CorruptCheckpointError, safe_torch_load
from mmsimclr.utils.resume import find_resume_checkpoint, resume_candidates
from tests.test_datasets.test_bad_images import log_lines  # noqa: F401 (fixture)


def _save(path, value):
    torch.save({'state_dict': {'w': torch.full((3, ), float(value))}, 'meta': {'epoch': value}}, path)


def test_newest_complete_checkpoint_wins_and_skips_are_named(tmp_path, log_lines):
    work = str(tmp_path)
    for e in (1, 2, 10):
        _save(osp.join(work, f'epoch_{e}.pth'), e)
    with open(osp.join(work, 'epoch_10.pth'), 'r+b') as f:  # truncated newest
        f.truncate(200)
    open(osp.join(work, 'epoch_11.pth'), 'wb').close()  # empty
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:  # pointer names a deleted file
        f.write(osp.join(work, 'epoch_12.pth'))
    assert [osp.basename(p) for p in resume_candidates(work)] == [
        'epoch_12.pth', 'epoch_11.pth', 'epoch_10.pth', 'epoch_2.pth', 'epoch_1.pth']  # by step, not by name
    assert find_resume_checkpoint(work) == osp.join(work, 'epoch_2.pth')
    for skipped in ('epoch_12.pth', 'epoch_11.pth', 'epoch_10.pth'):
        assert any(f'skipping checkpoint {osp.join(work, skipped)}' in line for line in log_lines)


def test_nothing_resumable(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) is None
    open(tmp_path / 'iter_3.pth', 'wb').close()
    assert find_resume_checkpoint(str(tmp_path)) is None


def test_truncated_checkpoint_error_names_the_file(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    _save(path, 1)
    with open(path, 'r+b') as f:
        f.truncate(300)
    with pytest.raises(CorruptCheckpointError, match='epoch_1.pth is truncated or corrupt'):
        safe_torch_load(path)


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'epoch_1.pth')
    atomic_write_bytes(path, b'old complete content')

    def half_then_fail(f, data):
        f.write(data[:3])
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic_file, '_write_all', half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b'new content')
    assert open(path, 'rb').read() == b'old complete content'
    assert not osp.exists(temp_path_for(path))


def test_killed_writer_leaves_only_a_hidden_temp_file(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    atomic_write_bytes(path, b'old')
    pid = os.fork()
    if pid == 0:  # child: killed half-way through writing
        def half_then_die(f, data):
            f.write(data[:2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        atomic_file._write_all = half_then_die
        atomic_write_bytes(path, b'new content')
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)
    assert open(path, 'rb').read() == b'old'
    leftovers = [f for f in os.listdir(tmp_path) if f != 'epoch_1.pth']
    assert len(leftovers) == 1 and leftovers[0].startswith('.epoch_1.pth.tmp-')
    assert remove_stale_temp_files(str(tmp_path)) == [str(tmp_path / leftovers[0])]
    assert os.listdir(tmp_path) == ['epoch_1.pth']
