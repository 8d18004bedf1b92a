"""SimCLR's grad-cache step (``grad_cache=dict(chunk_size=..., split_views=...)``): exact against K processes that
each hold one chunk (2 gloo ranks with DDP and plain per-process BN), against autograd through per-chunk forwards,
BN running statistics updated once per chunk, views split across chunks, gradient accumulation refused.

Float64 model and data, so that the comparisons test the algorithm and not rounding (see ``test_distributed.py``).
NT-Xent itself runs in float32 (``NTXentLoss`` casts), so where the loss is computed in other blocks (one process
against ranks) the gradients agree to float32 rounding of the loss: measured 4e-8 relative for the whole gradient
(bound 1e-6) and up to 5e-7 for one parameter (``neck.bn1.bias``, whose gradient nearly cancels; bound 1e-5, as in
``test_distributed.py``); where the same blocks are computed (grad cache against per-chunk autograd in one process)
to 1e-9.
"""
import copy
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.optim import OptimWrapper

from mmsimclr.models.algorithms.simclr import grad_cache_chunks
from mmsimclr.registry import MODELS

WORLD = 2
N, V = 8, 2  # images of the global batch, views per image: 16 rows
TINY = dict(
    type='SimCLR',
    data_preprocessor=dict(type='mmengine.BaseDataPreprocessor'),  # no float32 cast: the model runs in float64
    backbone=dict(type='ResNet', depth=18, stem_channels=16, base_channels=16, out_indices=(3, ),
                  norm_cfg=dict(type='BN'), zero_init_residual=False),
    neck=dict(type='NonLinearNeck', in_channels=128, hid_channels=32, out_channels=16, norm_cfg=dict(type='BN1d')),
    head=dict(type='ContrastiveHead', temperature=0.2))


class RecordingOptimWrapper(OptimWrapper):
    """Keeps the parameter gradients that ``step`` sees (SGD with lr 0: the parameters stay as they are)."""

    def __init__(self, model, **kwargs):
        super().__init__(torch.optim.SGD(model.parameters(), lr=0.0), **kwargs)
        self.model, self.grads, self.steps = model, None, 0

    def step(self, **kwargs):
        self.grads = {k: p.grad.clone() for k, p in self.model.named_parameters()}
        self.steps += 1
        super().step(**kwargs)


def build(grad_cache=None, state=None, **changes):
    cfg = copy.deepcopy(TINY)
    for key, value in changes.items():
        cfg['backbone'][key] = value
    model = MODELS.build(dict(cfg, grad_cache=grad_cache)).double()
    if state is not None:
        model.load_state_dict(state)
    return model.train()


def batch(views):
    return dict(inputs=list(views), data_samples=None)


def grad_cache_step(state, views, **grad_cache):
    model = build(grad_cache, state)
    wrapper = RecordingOptimWrapper(model)
    log_vars = model.train_step(batch(views), wrapper)
    assert wrapper.steps == 1 and all(p.grad is None or not p.grad.any() for p in model.parameters())  # zeroed
    return wrapper.grads, log_vars['loss'].item(), model.state_dict()


def per_chunk_reference(state, views, chunks, amp=False, **changes):
    """Plain autograd through one forward per chunk: ``chunks`` lists each chunk's sample-major rows, in the order
    the chunk runs them. Returns the gradients, the loss and the state (BN updated by each chunk in turn)."""
    model = build(None, state, **changes).to(views.dtype)
    x = torch.stack(list(views), dim=1).flatten(0, 1)
    parts = []
    for rows in chunks:
        # an autocast region per chunk, as a process per chunk has: each casts the weights to bf16 itself (one
        # region would cast them once for all chunks and sum the chunks' gradients in bf16)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            parts.append(model.project(x[rows]))
    z = torch.cat(parts)[torch.cat(chunks).argsort()]  # row order
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
        loss = model.head.loss(z, num_views=len(views))
    loss.backward()
    return {k: p.grad.clone() for k, p in model.named_parameters()}, loss.item(), model.state_dict()


def view_major(*groups):
    """The chunks of ``grad_cache_chunks(split_views=False)`` when chunks hold whole images: view 0 of the
    chunk's images, then view 1."""
    return [rows(*((v, images) for v in range(V))) for images in groups]


def rows(*pairs):
    """Sample-major rows of (view, images) pairs."""
    return torch.cat([torch.as_tensor(list(images)) * V + v for v, images in pairs])


def relative_differences(grads, reference):
    assert grads.keys() == reference.keys()
    return {name: float((g - reference[name]).norm() / reference[name].norm().clamp_min(1e-30))
            for name, g in grads.items()}


def assert_same_gradients(grads, reference, rtol=1e-9, param_rtol=None):
    """The whole gradient within ``rtol`` (relative), each parameter's within ``param_rtol`` (default ``rtol``)."""
    worst = max(relative_differences(grads, reference).items(), key=lambda item: item[1])
    assert worst[1] <= (param_rtol or rtol), worst
    total = torch.cat([(grads[k] - reference[k]).flatten() for k in reference]).norm()
    assert float(total) <= rtol * float(torch.cat([g.flatten() for g in reference.values()]).norm())


def assert_same_buffers(state, reference):
    for name, value in reference.items():
        if 'running_' in name or 'num_batches_tracked' in name:
            assert torch.allclose(state[name], value, rtol=1e-10, atol=1e-12), name


@pytest.fixture(scope='module')
def setup():
    torch.manual_seed(0)
    state = build().state_dict()
    views = torch.randn(V, N, 3, 16, 16, dtype=torch.float64)
    return state, views


# ------------------------------------------------------------------------------------------------ one process
def test_equals_autograd_through_per_chunk_forwards(setup):
    state, views = setup
    grads, loss, after = grad_cache_step(state, views, chunk_size=8)  # 2 chunks of 4 images
    ref_grads, ref_loss, ref_after = per_chunk_reference(state, views, [torch.arange(8), torch.arange(8, 16)])
    assert abs(loss - ref_loss) <= 1e-12 * abs(ref_loss)
    assert_same_gradients(grads, ref_grads)
    # BN running statistics and num_batches_tracked: updated by chunk 0, then by chunk 1 (pass 1 leaves no trace)
    assert_same_buffers(after, ref_after)
    assert int(after['backbone.bn1.num_batches_tracked']) == int(state['backbone.bn1.num_batches_tracked']) + 2


def test_chunk_boundary_inside_an_image_and_uneven_last_chunk(setup):
    state, views = setup
    grads, loss, after = grad_cache_step(state, views, chunk_size=6)  # rows 0-5, 6-11, 12-15
    ref_grads, ref_loss, ref_after = per_chunk_reference(
        state, views, [torch.arange(0, 6), torch.arange(6, 12), torch.arange(12, 16)])
    assert abs(loss - ref_loss) <= 1e-12 * abs(ref_loss)
    assert_same_gradients(grads, ref_grads)
    assert_same_buffers(after, ref_after)


def test_split_views(setup):
    """chunk k holds view 0 of image group k and view 1 of group k + 1 (mod K): no chunk sees both views of an
    image, and the gradient is that of the per-chunk forwards arranged so, the positives still paired."""
    state, views = setup
    grads, loss, after = grad_cache_step(state, views, chunk_size=8, split_views=True)
    chunks = [rows((0, range(0, 4)), (1, range(4, 8))), rows((0, range(4, 8)), (1, range(0, 4)))]
    ref_grads, ref_loss, ref_after = per_chunk_reference(state, views, chunks)
    assert abs(loss - ref_loss) <= 1e-12 * abs(ref_loss)
    assert_same_gradients(grads, ref_grads)
    assert_same_buffers(after, ref_after)
    # not the arrangement without split_views (the BN statistics do see which rows share a chunk)
    plain_grads, plain_loss, _ = grad_cache_step(state, views, chunk_size=8)
    assert abs(plain_loss - loss) > 1e-6


@pytest.mark.parametrize('num_images,num_views,chunk_size', [(8, 2, 4), (8, 2, 8), (9, 3, 7), (10, 2, 6)])
def test_split_views_chunks(num_images, num_views, chunk_size):
    chunks = grad_cache_chunks(num_images, num_views, chunk_size, split_views=True)
    seen = []
    for chunk in chunks:
        images = torch.cat(list(chunk))
        assert len(set(images.tolist())) == len(images), chunk  # no image twice in a chunk
        assert len(images) <= chunk_size
        seen += [(v, int(i)) for v, idx in enumerate(chunk) for i in idx]
    assert sorted(seen) == [(v, i) for v in range(num_views) for i in range(num_images)]  # every row once
    with pytest.raises(ValueError, match='lower grad_cache.chunk_size'):
        grad_cache_chunks(num_images, num_views, num_images * num_views, split_views=True)


def test_random_layers_see_the_same_numbers_in_both_passes(setup):
    """Drop path (random per row): pass 2 replays pass 1's random numbers, so the gradient is that of per-chunk
    forwards drawing them in the same order (a chunk's rows run view by view)."""
    state, views = setup
    torch.manual_seed(5)
    model = build(dict(chunk_size=8), state, drop_path_rate=0.5)
    wrapper = RecordingOptimWrapper(model)
    model.train_step(batch(views), wrapper)
    torch.manual_seed(5)
    chunks = view_major(range(0, 4), range(4, 8))
    reference, _, _ = per_chunk_reference(state, views, chunks, drop_path_rate=0.5)
    assert_same_gradients(wrapper.grads, reference)
    without, _, _ = per_chunk_reference(state, views, chunks)
    assert float((reference['backbone.conv1.weight'] - without['backbone.conv1.weight']).norm()) > 1e-6


def test_bf16_autocast(setup):
    """Under ``BF16OptimWrapper`` (bf16 autocast; the cached ``z`` and ``dL/dz`` are bf16): the loss and gradient
    of autocast per-chunk forwards. 32 px: at 16 px, 1 x 1 maps in ``layer4`` make bf16 BN statistics of 4 values,
    whose gradients overflow now and then."""
    from mmsimclr.engine.optimizers import BF16OptimWrapper
    state, _ = setup
    views = torch.randn(V, N, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model = build(dict(chunk_size=8), state).float()
    wrapper = RecordingOptimWrapper(model)
    wrapper.__class__ = type('RecordingBF16OptimWrapper', (RecordingOptimWrapper, BF16OptimWrapper), {})
    loss = model.train_step(batch(views), wrapper)['loss'].item()
    reference, ref_loss, _ = per_chunk_reference(state, views, view_major(range(0, 4), range(4, 8)), amp=True)
    assert all(g.isfinite().all() for g in reference.values())
    assert abs(loss - ref_loss) <= 1e-6 * ref_loss
    assert_same_gradients(wrapper.grads, reference, rtol=1e-6)


def test_saved_activations_of_one_chunk(setup):
    """The memory claim, with the benchmark's counter (``tools/benchmark/grad_cache.py``): the grad-cache step on
    the whole batch in chunks of 8 rows keeps at most what a plain step on 8 rows keeps saved for backward (plus
    the embeddings, which are not saved tensors); the plain step on the whole batch keeps about twice as much."""
    from tools.benchmark.grad_cache import PeakSavedActivations
    state, views = setup
    peaks = {}
    for name, grad_cache, images in (('plain C', None, 4), ('grad cache', dict(chunk_size=8), N), ('plain B', None, N)):
        model = build(grad_cache, state)
        with PeakSavedActivations(model) as saved:
            model.train_step(batch(views[:, :images]), RecordingOptimWrapper(model))
        assert saved.live == 0  # every saved tensor freed by its backward
        peaks[name] = saved.peak
    assert peaks['grad cache'] <= 1.1 * peaks['plain C'], peaks
    assert peaks['plain B'] >= 1.8 * peaks['plain C'], peaks


@pytest.mark.parametrize('grad_cache', [None, dict(chunk_size=8)])
def test_gradient_accumulation_refused(setup, grad_cache):
    state, views = setup
    model = build(grad_cache, state)
    with pytest.raises(ValueError, match=r'accumulative_counts=4 is refused.*grad_cache=dict\(chunk_size='):
        model.train_step(batch(views), RecordingOptimWrapper(model, accumulative_counts=4))


@pytest.mark.parametrize('option,error', [(dict(chunk_size=0), 'positive int'), (dict(), 'positive int'),
                                          (dict(chunk_size=8, split=True), 'unknown grad_cache keys'),
                                          (256, 'must be a dict')])
def test_bad_option(option, error):
    with pytest.raises((ValueError, TypeError), match=error):
        build(option)


# ------------------------------------------------------------------------------------------------ two ranks
def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def ddp_worker(rank, world_size, port, state_path, views_path, out_dir):
    """Rank ``rank`` holds images ``rank * N / 2 ...`` of the batch; three DDP steps on the same start: the plain
    step, the grad-cache step in chunks of 4 rows, and a refused accumulating step. Rank 0 writes the results."""
    from tests.test_models.test_utils import dist_workers
    dist_workers.init(rank, world_size, port)
    from mmsimclr.engine import SimCLRDistributedDataParallel
    state = torch.load(state_path, weights_only=True)
    views = torch.load(views_path, weights_only=True)
    n = views.shape[1] // world_size
    local = views[:, rank * n:(rank + 1) * n]
    out = {}
    for name, grad_cache in (('plain', None), ('grad_cache', dict(chunk_size=4))):
        model = build(grad_cache, state)
        ddp = SimCLRDistributedDataParallel(model)  # torch's default broadcast_buffers=True: the harder case
        wrapper = RecordingOptimWrapper(model)
        out[f'{name} loss'] = ddp.train_step(batch(local), wrapper)['loss'].item()
        out[f'{name} grads'] = wrapper.grads
        out[f'{name} state'] = model.state_dict()
    try:
        ddp.train_step(batch(local), RecordingOptimWrapper(model, accumulative_counts=2))
        out['refused'] = ''
    except ValueError as e:
        out['refused'] = str(e)
    if rank == 0:
        torch.save(out, os.path.join(out_dir, 'out.pth'))
    else:
        torch.save({k: v for k, v in out.items() if 'loss' in k}, os.path.join(out_dir, f'losses{rank}.pth'))
    torch.distributed.destroy_process_group()


@pytest.fixture(scope='module')
def ddp_run(setup, tmp_path_factory):
    state, views = setup
    tmp = tmp_path_factory.mktemp('grad_cache_ddp')
    torch.save(state, tmp / 'state.pth')
    torch.save(views, tmp / 'views.pth')
    mp.start_processes(ddp_worker, nprocs=WORLD, start_method='fork',
                       args=(WORLD, free_port(), str(tmp / 'state.pth'), str(tmp / 'views.pth'), str(tmp)))
    out = torch.load(tmp / 'out.pth', weights_only=True)
    for name, value in torch.load(tmp / 'losses1.pth', weights_only=True).items():
        out[f'{name} mean'] = (out[name] + value) / WORLD  # the loss of the global batch
    return out


@pytest.mark.distributed
def test_one_process_equals_ranks_holding_one_chunk_each(setup, ddp_run):
    """Grad cache in one process, chunks of half the batch == 2 DDP ranks with plain per-rank BN, one chunk each
    (negatives gathered across ranks)."""
    state, views = setup
    grads, loss, _ = grad_cache_step(state, views, chunk_size=N * V // WORLD)
    assert_same_gradients(grads, ddp_run['plain grads'], rtol=1e-6, param_rtol=1e-5)
    assert abs(loss - ddp_run['plain loss mean']) <= 1e-6 * loss


@pytest.mark.distributed
def test_ranks_with_grad_cache_equal_one_process_with_grad_cache(setup, ddp_run):
    """2 ranks each in chunks of 4 rows (negatives global) == one process in chunks of 4 rows over the whole batch;
    rank 0's BN statistics are those of its two chunks, one update each."""
    state, views = setup
    grads, loss, _ = grad_cache_step(state, views, chunk_size=4)
    assert_same_gradients(grads, ddp_run['grad_cache grads'], rtol=1e-6, param_rtol=1e-5)
    assert abs(loss - ddp_run['grad_cache loss mean']) <= 1e-6 * loss  # each rank logs the mean over its rows
    _, _, rank0 = per_chunk_reference(state, views, view_major(range(0, 2), range(2, 4)))
    assert_same_buffers(ddp_run['grad_cache state'], rank0)
    assert int(ddp_run['grad_cache state']['neck.bn0.num_batches_tracked']) == 2


@pytest.mark.distributed
def test_ddp_wrapper_refuses_gradient_accumulation(ddp_run):
    assert 'accumulative_counts=2 is refused' in ddp_run['refused'] and 'grad_cache' in ddp_run['refused']

