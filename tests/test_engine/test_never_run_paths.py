"""Training paths that no machine had run, run on a CPU under 2-rank gloo DDP with GlobalBN and LARS.

* fp16 + GradScaler: what ``tools/train.py --amp`` gives a GPU below compute capability 8.0 (V100, T4):
  ``amp_optim_wrapper_cfg`` -> mmengine's ``AmpOptimWrapper`` with ``dtype='float16'`` and ``loss_scale='dynamic'``.
  That wrapper is CUDA-only as written, so three CPU/CUDA switches of mmengine are patched (before the ranks are
  forked, so the ranks run with them) and nothing of its logic: its constructor's GPU assertion
  (``amp_optimizer_wrapper.is_cuda_available``), its ``GradScaler`` (``torch.cuda.amp.GradScaler``, which disables
  itself without CUDA, becomes ``torch.amp.GradScaler('cpu')``, the same class for the CPU) and its autocast
  (``mmengine.runner.amp.autocast`` asserts bf16 on a CPU; it becomes ``torch.autocast('cpu', dtype)``). torch 2.14's
  CPU autocast runs convolutions and matmuls in float16 and ``torch.amp.GradScaler('cpu')`` unscales, checks for
  inf/NaN and skips steps on the CPU, so the scaled backward through GlobalBN's collectives, the unscale before
  LARS, the skipped steps and the scale's backoff all run (here the first 4 steps overflow and are skipped, as fp16
  training's first steps usually are; the next one is within 0.2 % of fp32's, median over the tensors). Not
  covered: GlobalBN's CUDA kernels in float16 (a CPU runs GlobalBN's CPU path), which the ``values`` section of
  ``tools/benchmark/gpu_check.py`` checks on a GPU (its AMP rows are fp16 on such a GPU).
* ``--compile`` (mmengine's ``cfg.compile=True``: ``torch.compile`` of the DDP wrapper's ``train_step``) with the
  ``aot_eager`` backend (Dynamo's capture and AOT autograd without inductor's C++ code generation, which takes
  minutes on a 2-core machine): GlobalBN is traced into the compiled graph (its all-gathers and all-reduces as
  functional collectives), and loss, updated weights and BN running statistics equal eager's.
"""
import datetime
import functools
import os.path as osp

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mmsimclr.registry import MODELS

pytestmark = pytest.mark.distributed

WORLD = 2
LARS_CFG = dict(type='OptimWrapper', optimizer=dict(type='LARS', lr=4.8, momentum=0.9, weight_decay=1e-6),
                constructor='SimCLROptimWrapperConstructor')


def model_cfg(num_stages=4):
    """SimCLR with GlobalBN everywhere: an 8-channel ResNet-18 (``num_stages`` of its 4 stages) and a small neck."""
    return dict(type='mmsimclr.SimCLR',
                data_preprocessor=dict(type='mmpretrain.SelfSupDataPreprocessor', mean=[127.5] * 3, std=[64.0] * 3,
                                       to_rgb=True),
                backbone=dict(type='mmpretrain.ResNet', depth=18, stem_channels=8, base_channels=8,
                              num_stages=num_stages, strides=(1, 2, 2, 2)[:num_stages],
                              dilations=(1, 1, 1, 1)[:num_stages], out_indices=(num_stages - 1, ),
                              norm_cfg=dict(type='GlobalBN')),
                neck=dict(type='mmsimclr.NonLinearNeck', in_channels=8 * 2**(num_stages - 1), hid_channels=32,
                          out_channels=16, norm_cfg=dict(type='GlobalBN')),
                head=dict(type='mmsimclr.ContrastiveHead', temperature=0.2))


def build(cfg):
    with DefaultScope.overwrite_default_scope('mmsimclr'):
        return MODELS.build(cfg)


def initial_state(cfg):
    torch.manual_seed(0)
    model = build(cfg)
    model.init_weights()
    return {k: v.clone() for k, v in model.state_dict().items()}


def batch(rank, seed=0, n=4):
    """This rank's part of a global batch: ``n`` images x 2 views of 32 px, uint8."""
    g = torch.Generator().manual_seed(1000 * seed + rank)
    return dict(inputs=[torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8) for _ in range(2)],
                data_samples=None)


def ddp_and_wrapper(cfg, state, wrapper_cfg):
    from mmsimclr.engine import SimCLRDistributedDataParallel
    model = build(cfg)
    model.load_state_dict(state)
    model.train()
    ddp = SimCLRDistributedDataParallel(model, broadcast_buffers=False)
    with DefaultScope.overwrite_default_scope('mmsimclr'):
        wrapper = build_optim_wrapper(model, wrapper_cfg)
    return model, ddp, wrapper


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def run_ranks(worker, tmp_path, *args):
    mp.start_processes(worker, nprocs=WORLD, start_method='fork', args=(str(tmp_path), *args))
    return [torch.load(tmp_path / f'rank{r}.pth', weights_only=False) for r in range(WORLD)]


def init(rank, tmp):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method='file://' + osp.join(tmp, 'store'), rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=120))


def relative(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


# ------------------------------------------------------------------------------------------------- fp16 + scaler
def fp16_worker(rank, tmp, cfg, state, fp16_cfg):
    init(rank, tmp)
    out = {}
    # fp32 reference: one step of the same model on the same batch
    model, ddp, wrapper = ddp_and_wrapper(cfg, state, LARS_CFG)
    out['fp32'] = dict(loss=ddp.train_step(batch(rank), wrapper)['loss'].item(), state=snapshot(model))

    model, ddp, wrapper = ddp_and_wrapper(cfg, state, fp16_cfg)
    scaler = wrapper.loss_scaler
    dtypes = {}
    for name, module in model.named_modules():
        if name in ('backbone.conv1', 'backbone.bn1', 'neck.bn1'):
            module.register_forward_hook(
                lambda m, i, o, name=name: dtypes.__setitem__(name, (i[0].dtype, o.dtype)))
    # the first steps at the default initial scale (2**16) may overflow in float16: each such step is skipped (the
    # weights and LARS's state untouched) and the scale halved, on both ranks alike; then a real step. Measured
    # here: 4 skips (2**16 .. 2**13: the float16 weight gradients, sums over the batch, overflow), a step at 2**12
    skips = []
    for _ in range(6):
        before, scale = snapshot(model), scaler.get_scale()
        loss = ddp.train_step(batch(rank), wrapper)['loss'].item()
        if scaler.get_scale() >= scale:
            break
        skips.append(dict(scale=(scale, scaler.get_scale()), unchanged=all(
            torch.equal(v, before[k]) for k, v in snapshot(model).items() if 'running' not in k
            and 'num_batches' not in k), lars_state=len(wrapper.optimizer.state)))
    out['fp16'] = dict(loss=loss, state=snapshot(model), skips=skips, scaler=scaler.state_dict(), dtypes=dtypes,
                       wrapper=type(wrapper).__name__, scaler_type=(type(scaler).__module__, scaler._device),
                       param_dtypes={p.dtype for p in model.parameters()},
                       lars_state=len(wrapper.optimizer.state))
    # a forced overflow: scale 2**40 makes the float16 gradients inf; the step is skipped, the scale backs off
    scaler.update(2.0**40)
    before = snapshot(model)
    momentum = [s['momentum_buffer'].clone() for s in wrapper.optimizer.state.values()]
    ddp.train_step(batch(rank, seed=1), wrapper)
    out['overflow'] = dict(
        scale=scaler.get_scale(), growth_tracker=scaler.state_dict()['_growth_tracker'],
        weights_unchanged=all(torch.equal(p, before[k]) for k, p in model.named_parameters()),
        momentum_unchanged=all(torch.equal(s['momentum_buffer'], m)
                               for s, m in zip(wrapper.optimizer.state.values(), momentum)))
    torch.save(out, osp.join(tmp, f'rank{rank}.pth'))
    dist.destroy_process_group()


@pytest.fixture
def fp16_amp_config(monkeypatch):
    """``--amp``'s optim wrapper config on a GPU of compute capability 7.0, and mmengine's AmpOptimWrapper made to
    run on a CPU (see the module docstring)."""
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_wrapper
    import mmengine.runner.amp as runner_amp

    from mmsimclr.engine.optimizers import amp_optim_wrapper_cfg
    with monkeypatch.context() as gpu:
        gpu.setattr(torch.cuda, 'is_available', lambda: True)
        gpu.setattr(torch.cuda, 'get_device_capability', lambda device=None: (7, 0))
        cfg = amp_optim_wrapper_cfg(LARS_CFG)
    assert cfg == dict(LARS_CFG, type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
    monkeypatch.setattr(amp_wrapper, 'is_cuda_available', lambda: True)
    monkeypatch.setattr(amp_wrapper, 'GradScaler', functools.partial(torch.amp.GradScaler, 'cpu'))
    monkeypatch.setattr(runner_amp, 'autocast', lambda device_type=None, dtype=None, enabled=True,
                        cache_enabled=None: torch.autocast('cpu', dtype=dtype, enabled=enabled))
    return cfg


def test_fp16_grad_scaler_global_bn_lars_step_under_ddp(fp16_amp_config, tmp_path):
    cfg = model_cfg()
    state = initial_state(cfg)
    ranks = run_ranks(fp16_worker, tmp_path, cfg, state, fp16_amp_config)
    fp16 = [r['fp16'] for r in ranks]
    for r in fp16:
        assert r['wrapper'] == 'AmpOptimWrapper' and r['scaler_type'] == ('torch.amp.grad_scaler', 'cpu')
        # float16 forward: convolutions, GlobalBN in and out; float32 master weights
        assert r['dtypes'] == {'backbone.conv1': (torch.float32, torch.float16),
                               'backbone.bn1': (torch.float16, torch.float16),
                               'neck.bn1': (torch.float16, torch.float16)}
        assert r['param_dtypes'] == {torch.float32} and r['lars_state'] > 0
        for skip in r['skips']:  # skipped steps: scale halved, weights and LARS state untouched
            assert skip['scale'][1] == skip['scale'][0] / 2 and skip['unchanged'] and skip['lars_state'] == 0
    # the ranks agree on every skip and on the scaler's state (the gradients they check are all-reduced)
    assert fp16[0]['skips'] == fp16[1]['skips'] and fp16[0]['scaler'] == fp16[1]['scaler']
    assert len(fp16[0]['skips']) < 6
    scaler = fp16[0]['scaler']
    assert scaler['scale'] == 2.0**16 / 2**len(fp16[0]['skips']) and scaler['_growth_tracker'] == 1
    # the fp16 step vs the fp32 step from the same weights on the same batch
    for r in ranks:
        assert r['fp16']['loss'] == pytest.approx(r['fp32']['loss'], rel=1e-2)
    updates = {k: (ranks[0]['fp16']['state'][k] - state[k], ranks[0]['fp32']['state'][k] - state[k])
               for k, _ in build(cfg).named_parameters()}
    errors = sorted(relative(a, b) for a, b in updates.values())
    assert errors[len(errors) // 2] < 0.02 and errors[-1] < 0.2, errors  # measured: median 0.002, worst 0.025
    for k, v in ranks[0]['fp32']['state'].items():  # GlobalBN running statistics (after one forward per step)
        if 'running_mean' in k and not fp16[0]['skips']:
            assert relative(ranks[0]['fp16']['state'][k], v) < 1e-2, k
    # the forced overflow: skipped on both ranks, scale backed off, weights and momentum untouched
    for r in ranks:
        assert r['overflow'] == dict(scale=2.0**39, growth_tracker=0, weights_unchanged=True,
                                     momentum_unchanged=True)


# ------------------------------------------------------------------------------------------------- --compile
def compile_worker(rank, tmp, cfg, state):
    import torch._dynamo
    from torch._dynamo.backends.debugging import aot_eager
    from torch._dynamo.utils import counters
    init(rank, tmp)
    torch._dynamo.reset()
    counters.clear()
    graphs = []

    def backend(gm, example_inputs):  # aot_eager, recording what each captured graph calls
        graphs.append('\n'.join(str(module.graph) for _, module in gm.named_modules() if hasattr(module, 'graph')))
        return aot_eager(gm, example_inputs)

    out = {}
    for name in ('eager', 'compiled'):
        model, ddp, wrapper = ddp_and_wrapper(cfg, state, LARS_CFG)
        if name == 'compiled':  # what mmengine's Runner._maybe_compile('train_step') does to the wrapped model
            ddp.train_step = torch.compile(ddp.train_step, backend=backend)
        losses, unique_graphs = [], []
        for step in range(2):
            for group in wrapper.optimizer.param_groups:  # a scheduler changes the lr between steps
                group['lr'] = 4.8 * (step + 1) / 2
            losses.append(ddp.train_step(batch(rank, seed=step), wrapper)['loss'].item())
            unique_graphs.append(counters['stats']['unique_graphs'])
        out[name] = dict(losses=losses, state=snapshot(model), unique_graphs=unique_graphs)
    out['graphs'] = graphs
    torch.save(out, osp.join(tmp, f'rank{rank}.pth'))
    dist.destroy_process_group()


def test_compiled_train_step_with_global_bn_under_ddp_equals_eager(tmp_path):
    cfg = model_cfg(num_stages=1)  # stem + 2 blocks + neck: 7 GlobalBN layers; compiling takes ~5 s
    state = initial_state(cfg)
    ranks = run_ranks(compile_worker, tmp_path, cfg, state)
    n_bn = sum(type(m).__name__ == 'GlobalBatchNorm' for m in build(cfg).modules())
    assert n_bn == 7
    for r in ranks:
        assert r['compiled']['losses'] == pytest.approx(r['eager']['losses'], rel=1e-6)
        for k, v in r['eager']['state'].items():  # weights after 2 LARS steps, BN running statistics
            if v.is_floating_point():
                torch.testing.assert_close(r['compiled']['state'][k], v, rtol=1e-5, atol=1e-7, msg=k)
        graphs = r['compiled']['unique_graphs']
        assert graphs[0] > 0 and graphs[1] == graphs[0], f'recompiled at the second step: {graphs}'
        # GlobalBN is in the compiled graphs: one all-gather of statistics per layer (forward), one all-reduce of
        # the gradient sums per layer (backward, traced with it)
        text = '\n'.join(r['graphs'])
        assert text.count('_c10d_functional.all_gather') == n_bn, text.count('all_gather')
        assert text.count('_c10d_functional.all_reduce') >= n_bn
    assert ranks[0]['compiled']['losses'] != ranks[1]['compiled']['losses']  # each rank its own local loss
