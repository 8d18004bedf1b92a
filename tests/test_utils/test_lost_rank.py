"""A rank that dies or hangs: the survivor stops within the configured timeout, with a message that says why."""
import multiprocessing as mp
import os
import signal
import socket
import sys
import time

import pytest
import torch

TIMEOUT_S = 3


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _rank(rank, port, output, started):
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    sys.stderr = open(2, 'w', closefd=False)  # (pytest replaced sys.stderr)
    os.environ.update(RANK=str(rank), WORLD_SIZE='2', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    import torch.distributed as dist

    from mmsimclr.utils.dist import exit_when_a_rank_is_lost, init_cpu_dist_if_needed
    assert init_cpu_dist_if_needed('pytorch', timeout_s=TIMEOUT_S)
    t = torch.ones(4)
    with exit_when_a_rank_is_lost(TIMEOUT_S):
        for i in range(100000):
            dist.all_reduce(t)
            if i == 10:
                started.set()
            time.sleep(0.005)
    os._exit(0)


@pytest.mark.parametrize('fate', ['killed', 'hung'])
def test_survivor_exits_in_bounded_time_with_a_clear_message(tmp_path, fate):
    ctx = mp.get_context('fork')
    port = _free_port()
    started = [ctx.Event() for _ in range(2)]
    outputs = [str(tmp_path / f'rank{r}.txt') for r in range(2)]
    procs = [ctx.Process(target=_rank, args=(r, port, outputs[r], started[r])) for r in range(2)]
    for p in procs:
        p.start()
    try:
        assert all(e.wait(60) for e in started), 'the two ranks did not start'
        os.kill(procs[1].pid, signal.SIGKILL if fate == 'killed' else signal.SIGSTOP)
        t0 = time.time()
        procs[0].join(TIMEOUT_S + 20)
        waited = time.time() - t0
        assert not procs[0].is_alive(), 'the surviving rank is still waiting'
    finally:
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGKILL)
            p.join()
    assert procs[0].exitcode == 75
    assert waited < TIMEOUT_S + 15
    with open(outputs[0]) as f:
        message = f.read()
    assert 'rank 0 of 2: lost contact with another process of this job' in message
    assert f'env_cfg.dist_cfg.timeout={TIMEOUT_S} s' in message and '--resume auto' in message


def test_other_errors_are_not_disguised():
    from mmsimclr.utils.dist import exit_when_a_rank_is_lost
    with pytest.raises(ValueError, match='plain bug'):
        with exit_when_a_rank_is_lost(10):
            raise ValueError('plain bug')


def test_data_loader_timeout_is_not_a_lost_rank(monkeypatch):
    import torch.distributed as dist

    from mmsimclr.utils.dist import describe_lost_rank
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(dist, 'get_world_size', lambda: 2)
    monkeypatch.setattr(dist, 'get_rank', lambda: 1)
    assert describe_lost_rank(RuntimeError('DataLoader timed out after 5 seconds'), 60) is None
    message = describe_lost_rank(RuntimeError('[gloo/transport/tcp/pair.cc:545] Connection reset by peer'), 60)
    assert message.startswith('rank 1 of 2: lost contact')
