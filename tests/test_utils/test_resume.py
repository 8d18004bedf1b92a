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


# --resume auto in a distributed job: rank 0 chooses, every rank gets its choice -------------------------------------

def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _resolving_rank(rank, port, work_dirs, output):
    """One of 2 gloo ranks: three --resume auto resolutions, each outcome written to ``output`` as a JSON line."""
    import json

    import torch.distributed as dist

    import mmsimclr.utils.resume as resume
    os.environ.update(RANK=str(rank), WORLD_SIZE='2', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    import datetime
    dist.init_process_group('gloo', timeout=datetime.timedelta(seconds=30))
    outcomes = []

    def attempt(**kwargs):
        try:
            outcomes.append(['path', resume.resolve_resume_checkpoint(work_dirs[rank], **kwargs)])
        except Exception as e:
            outcomes.append([type(e).__name__, str(e)])

    attempt()  # 1. rank 1's view of the work dir is empty (as a lagging NFS client's can be)
    real_isfile = osp.isfile
    if rank == 1:  # 2. rank 1 cannot see the file rank 0 chose at all
        resume.osp.isfile = lambda p: False if p.endswith('epoch_2.pth') else real_isfile(p)
    attempt(visible_within_s=1)
    resume.osp.isfile = real_isfile
    if rank == 0:  # 3. rank 0 fails while choosing: the others must not wait for a broadcast that never comes
        resume.find_resume_checkpoint = lambda work_dir: (_ for _ in ()).throw(PermissionError(f'{work_dir}: denied'))
    attempt()
    with open(output, 'w') as f:
        json.dump(outcomes, f)
    dist.destroy_process_group()
    os._exit(0)


@pytest.mark.distributed
def test_rank_0_chooses_and_every_rank_resumes_from_its_choice(tmp_path):
    import json
    import multiprocessing as mp
    shared, blind = tmp_path / 'work', tmp_path / 'empty_view'
    shared.mkdir()
    blind.mkdir()
    for e in (1, 2):
        _save(str(shared / f'epoch_{e}.pth'), e)
    assert find_resume_checkpoint(str(blind)) is None  # what rank 1 would pick alone
    ctx, port = mp.get_context('fork'), _free_port()
    outputs = [str(tmp_path / f'rank{r}.json') for r in range(2)]
    procs = [ctx.Process(target=_resolving_rank, args=(r, port, [str(shared), str(blind)], outputs[r]))
             for r in range(2)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGKILL)
                p.join()
    rank0, rank1 = (json.load(open(o)) for o in outputs)
    newest = str(shared / 'epoch_2.pth')
    assert rank0[0] == rank1[0] == ['path', newest]
    for outcome in (rank0[1], rank1[1]):  # both stop, and the message names the blind rank and the file
        assert outcome[0] == 'FileNotFoundError'
        assert f'rank 0 chose {newest}, but rank(s) [1] cannot see it' in outcome[1]
    for outcome in (rank0[2], rank1[2]):
        assert outcome[0] == 'RuntimeError'
        assert f'rank 0 could not choose a checkpoint in {shared}: PermissionError: {shared}: denied' in outcome[1]


def test_without_a_process_group_each_process_chooses(tmp_path):
    from mmsimclr.utils.resume import apply_auto_resume, resolve_resume_checkpoint

    class Runner:  # the two attributes mmengine's Runner.load_or_resume reads
        work_dir, _load_from, _resume = str(tmp_path), None, True

    runner = Runner()
    assert resolve_resume_checkpoint(str(tmp_path)) is None
    assert apply_auto_resume(runner) is None and runner._resume is False  # nothing to resume: a fresh start
    _save(str(tmp_path / 'epoch_3.pth'), 3)
    assert apply_auto_resume(runner) == str(tmp_path / 'epoch_3.pth')
    assert runner._load_from == str(tmp_path / 'epoch_3.pth') and runner._resume is True
