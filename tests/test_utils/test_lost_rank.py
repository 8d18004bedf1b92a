"""A rank that dies or hangs: the survivor stops within the configured timeout, with a message that says why."""
import multiprocessing as mp
import os
import signal
import socket
import sys
import time

import pytest
import torch
import torch.distributed as dist

pytestmark = pytest.mark.distributed

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


@pytest.fixture
def two_ranks(monkeypatch):
    import torch.distributed as dist
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(dist, 'get_world_size', lambda: 2)
    monkeypatch.setattr(dist, 'get_rank', lambda: 1)


#: Errors as gloo (torch 2.14, seen in this file's 2-process tests), NCCL (its ncclGetErrorString texts and
#: torch's C10D_NCCL_CHECK / watchdog wording) and the TCP store raise them when another process died or hung.
PEER_LOSS = [
    RuntimeError('[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer '
                 '[127.0.0.1]:19635. This is typically caused by a remote worker crashing.'),
    RuntimeError('[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error '
                 '[127.0.0.1]:44182: Connection reset by peer.'),
    RuntimeError('[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting '
                 '3000ms for recv operation to complete'),
    dist.DistBackendError('NCCL error in: /pytorch/torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:3356, remote '
                          'process exited or there was a network error, NCCL version 2.27.3\nncclRemoteError: A call '
                          'failed possibly due to a network error or a remote process exiting prematurely.\nLast '
                          'error:\nsocketProgress: Connection closed by remote peer gpu-node-2<52170>'),
    dist.DistBackendError('[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=153, '
                          'OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600046 milliseconds '
                          'before timing out.'),
    dist.DistBackendError('NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled system error (run with NCCL_DEBUG=INFO '
                          'for details), NCCL version 2.14.3\nncclSystemError: System call (e.g. socket, malloc) or '
                          'external library call failed or device error.\nLast error:\nsocketProgressOpt: Connection '
                          'closed by remote peer node-3<41522>'),  # older NCCL: a closed socket as a system error
    dist.DistNetworkError('Connection reset by peer'),  # rank 0's TCP store went away
]
#: Errors of this process itself: they must propagate as they are, never be called a lost rank.
LOCAL = [
    dist.DistBackendError('NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled cuda error (run with NCCL_DEBUG=INFO '
                          'for details), NCCL version 2.21.5\nncclUnhandledCudaError: Call to CUDA function failed.\n'
                          "Last error:\nCuda failure 'out of memory'"),
    dist.DistBackendError('NCCL error in: ProcessGroupNCCL.cpp:1970, invalid usage (run with NCCL_DEBUG=WARN for '
                          'details), NCCL version 2.21.5\nncclInvalidUsage: This usually reflects invalid usage of '
                          'NCCL library.\nLast error:\nDuplicate GPU detected : rank 1 and rank 0 both on CUDA device '
                          '1000'),
    dist.DistBackendError('NCCL error in: NCCLUtils.cpp:77, invalid argument (run with NCCL_DEBUG=WARN for details), '
                          'NCCL version 2.21.5\nncclInvalidArgument: Invalid value for an argument.'),
    dist.DistBackendError('NCCL communicator was aborted on rank 1. Original reason for failure was: NCCL error: '
                          'unhandled cuda error, NCCL version 2.21.5\nncclUnhandledCudaError: Call to CUDA function '
                          'failed.'),
    dist.DistBackendError('NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled system error, NCCL version 2.21.5\n'
                          'ncclSystemError: System call (e.g. socket, malloc) or external library call failed or '
                          'device error.\nLast error:\nCuda failure 201 \'invalid device context\''),
    RuntimeError('[enforce fail at ../third_party/gloo/gloo/transport/tcp/pair.cc:464] op.preamble.length <= '
                 'op.nbytes. 8 vs 4'),  # a collective mismatch: a bug here, the peer is alive
    RuntimeError('DataLoader timed out after 5 seconds'),
    RuntimeError('CUDA error: an illegal memory access was encountered'),
    dist.DistNetworkError('The server socket has failed to listen on any local network address. port: 29500, '
                          'useIpv6: false, code: -98, name: EADDRINUSE, message: address already in use'),
    ValueError('plain bug'),
]


@pytest.mark.parametrize('exc', PEER_LOSS, ids=lambda e: str(e)[:60])
def test_peer_loss_is_described_as_a_lost_rank(two_ranks, exc):
    from mmsimclr.utils.dist import describe_lost_rank
    message = describe_lost_rank(exc, 60)
    assert message is not None and message.startswith('rank 1 of 2: lost contact with another process')
    assert str(exc).splitlines()[0][:100] in message  # the original error's first line is quoted


@pytest.mark.parametrize('exc', LOCAL, ids=lambda e: str(e)[:60])
def test_local_errors_are_not_a_lost_rank(two_ranks, exc):
    from mmsimclr.utils.dist import describe_lost_rank, exit_when_a_rank_is_lost
    assert describe_lost_rank(exc, 60) is None
    with pytest.raises(type(exc)) as raised:  # propagates unchanged (no exit 75)
        with exit_when_a_rank_is_lost(60):
            raise exc
    assert raised.value is exc


def test_cause_chain_is_read(two_ranks):
    from mmsimclr.utils.dist import describe_lost_rank
    try:
        try:
            raise RuntimeError('[gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:1')
        except RuntimeError as inner:
            raise RuntimeError('all_reduce of the loss failed') from inner
    except RuntimeError as outer:
        assert describe_lost_rank(outer, 60).startswith('rank 1 of 2: lost contact')


def test_one_process_never_loses_a_rank(monkeypatch):
    import torch.distributed as dist

    from mmsimclr.utils.dist import describe_lost_rank
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(dist, 'get_world_size', lambda: 1)
    monkeypatch.setattr(dist, 'get_rank', lambda: 0)
    assert describe_lost_rank(PEER_LOSS[0], 60) is None
