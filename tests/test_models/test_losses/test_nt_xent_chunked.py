"""NTXentLoss's chunked mode (and the hand-written backward) against mmpretrain's SimCLR loss as the oracle."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from mmsimclr.models.losses import NTXentLoss
from tools.benchmark.common import mmpretrain_simclr_loss


def mmpretrain_loss_and_grads(v0, v1, temperature):
    """mmpretrain's SimCLR.loss on two views of given projections (identity backbone/neck): loss, grads."""
    views = [v0.clone().requires_grad_(), v1.clone().requires_grad_()]
    loss = mmpretrain_simclr_loss(temperature)(views)
    loss.backward()
    return loss.detach(), torch.stack([v.grad for v in views], 1).flatten(0, 1)


def ours_loss_and_grad(z, num_views, temperature, chunk_size, loss_weight=1.0):
    z = z.clone().requires_grad_()
    loss = NTXentLoss(temperature, loss_weight=loss_weight, chunk_size=chunk_size)(z, num_views=num_views)
    loss.backward()
    return loss.detach(), z.grad


@pytest.mark.parametrize('chunk_size', [None, 1, 7, 32, 64, 1000])
@pytest.mark.parametrize('temperature', [0.1, 0.5])
def test_chunked_equals_mmpretrain(chunk_size, temperature):
    torch.manual_seed(0)
    n, d = 32, 16
    v0, v1 = torch.randn(n, d), torch.randn(n, d)
    ref_loss, ref_grad = mmpretrain_loss_and_grads(v0, v1, temperature)
    z = torch.stack([v0, v1], 1).flatten(0, 1)
    loss, grad = ours_loss_and_grad(z, 2, temperature, chunk_size)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('num_views', [3, 4])
@pytest.mark.parametrize('chunk_size', [1, 5, 16])
def test_chunked_equals_unchunked_with_more_views(num_views, chunk_size):
    torch.manual_seed(1)
    z = torch.randn(6 * num_views, 8)
    ref_loss, ref_grad = ours_loss_and_grad(z, num_views, 0.2, None, loss_weight=0.7)
    loss, grad = ours_loss_and_grad(z, num_views, 0.2, chunk_size, loss_weight=0.7)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-8)
    # and against a plain autograd transcription of the same objective
    zz = z.clone().requires_grad_()
    zn = torch.nn.functional.normalize(zz, dim=1)
    s = zn @ zn.t() / 0.2
    s = s.masked_fill(torch.eye(len(z), dtype=torch.bool), float('-inf')).log_softmax(1)
    same = (torch.arange(len(z))[:, None] // num_views == torch.arange(len(z))[None] // num_views)
    same &= ~torch.eye(len(z), dtype=torch.bool)
    plain = -(s.masked_fill(~same, 0).sum(1) / (num_views - 1)).mean() * 0.7
    plain.backward()
    torch.testing.assert_close(loss, plain.detach(), rtol=1e-5, atol=0)
    torch.testing.assert_close(grad, zz.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('chunk_size', [None, 8])
def test_backward_twice_with_retain_graph(chunk_size):
    torch.manual_seed(2)
    z = torch.randn(16, 8, requires_grad=True)
    loss = NTXentLoss(0.1, chunk_size=chunk_size)(z)
    loss.backward(retain_graph=True)
    first = z.grad.clone()
    loss.backward()
    torch.testing.assert_close(z.grad, 2 * first)


def test_upstream_gradient_scale_and_half_inputs():
    torch.manual_seed(3)
    z = torch.randn(16, 8)
    _, grad = ours_loss_and_grad(z, 2, 0.1, 4)
    zz = z.clone().requires_grad_()
    (3.0 * NTXentLoss(0.1, chunk_size=4)(zz)).backward()
    torch.testing.assert_close(zz.grad, 3 * grad)
    zb = z.bfloat16().requires_grad_()
    out = NTXentLoss(0.1, chunk_size=4)(zb)
    out.backward()
    assert out.dtype == torch.float32 and zb.grad.dtype == torch.bfloat16


@pytest.mark.parametrize('chunk_size', [0, -3, 2.5])
def test_rejects_bad_chunk_size(chunk_size):
    with pytest.raises(ValueError, match='chunk_size'):
        NTXentLoss(chunk_size=chunk_size)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, z_global, chunk_size, queue):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        m = z_global.shape[0] // world_size
        z = z_global[rank * m:(rank + 1) * m].clone().requires_grad_()
        loss = NTXentLoss(0.1, chunk_size=chunk_size)(z)
        (loss / world_size).backward()  # what DDP's gradient averaging does
        # by value (numpy), not as a torch tensor: torch passes tensors through a queue as a file descriptor that
        # the parent fetches from this process's resource sharer, which is gone if this process has exited by then
        queue.put((rank, loss.item(), z.grad.numpy()))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.distributed
def test_distributed_chunked_equals_single_process_global_batch():
    """2 gloo ranks, chunked: the mean of the rank losses and the gradients equal mmpretrain's on the global batch."""
    torch.manual_seed(4)
    n, d, world = 12, 8, 2
    v0, v1 = torch.randn(n, d), torch.randn(n, d)
    ref_loss, ref_grad = mmpretrain_loss_and_grads(v0, v1, 0.1)
    z = torch.stack([v0, v1], 1).flatten(0, 1)
    ctx, port = mp.get_context('fork'), _free_port()  # forked: the ranks start without importing anything again
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, world, port, z, 5, queue)) for r in range(world)]
    for p in procs:
        p.start()
    results = dict((r, (l, g)) for r, l, g in (queue.get(timeout=60) for _ in range(world)))
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    mean_loss = sum(results[r][0] for r in range(world)) / world
    grad = torch.cat([torch.from_numpy(results[r][1]) for r in range(world)])
    assert mean_loss == pytest.approx(ref_loss.item(), rel=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('chunk_size', [None, 8])
def test_under_cpu_autocast_stays_float32(chunk_size):
    """Under bf16 autocast (AMP on CPU) the similarities are still computed in float32: same value and gradient."""
    torch.manual_seed(6)
    z = torch.randn(32, 16)
    ref_loss, ref_grad = ours_loss_and_grad(z, 2, 0.1, chunk_size)
    zz = z.clone().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = NTXentLoss(0.1, chunk_size=chunk_size)(zz)
    loss.backward()
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.detach(), ref_loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(zz.grad, ref_grad, rtol=1e-5, atol=1e-8)
