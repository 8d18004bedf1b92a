"""mmsimclr's LARS against mmpretrain's LARS (the oracle) on the same parameters, groups and gradients; and how it
computes: multi-tensor ops with fast-path-eligible arguments, no host synchronisation."""
import copy
from collections import Counter

import pytest
import torch
import torch.nn as nn
from mmengine.registry import DefaultScope
from mmpretrain.engine.optimizers import LARS as MMPretrainLARS
from torch.utils._python_dispatch import TorchDispatchMode

from mmsimclr.engine.optimizers import LARS, SimCLROptimWrapperConstructor
from mmsimclr.registry import OPTIMIZERS
from tests.sync_counter import SyncCounter

DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU'))]


def small_model(blocks=1):
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU()]
    for _ in range(blocks):
        layers += [nn.Conv2d(8, 8, 1), nn.GroupNorm(2, 8)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4, bias=False)]
    return nn.Sequential(*layers)


def groups_of(model):
    """Groups as training builds them: norm params and biases in a lars_exclude group without weight decay."""
    ctor = SimCLROptimWrapperConstructor(dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1,
                                                                                  weight_decay=1e-4)))
    groups = []
    for g in ctor(model).optimizer.param_groups:  # keep the constructor's choices, not SGD's defaults
        group = dict(params=g['params'])
        if g.get('lars_exclude', False):
            group.update(lars_exclude=True, weight_decay=g['weight_decay'])
        groups.append(group)
    return groups


def gradient_sequence(model, steps, seed=1):
    """Fixed gradients per step, independent of the parameters (so rounding differences cannot compound)."""
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=gen) * 10**float(torch.empty(1).uniform_(-4, 0, generator=gen))
             for p in model.parameters()] for _ in range(steps)]


def rel_diff(a, b):
    return ((a.cpu() - b.cpu()).norm() / b.cpu().norm().clamp_min(1e-30)).item()


def run(model, opt, grads):
    for step_grads in grads:
        for p, g in zip(model.parameters(), step_grads):
            p.grad = g.clone().to(p.device)
        opt.step()


def perturbed_twins(device='cpu', blocks=1):
    """mmpretrain's model and ours with the same weights, none zero (every adaptive parameter gets a real ratio)."""
    ref_model = small_model(blocks)
    with torch.no_grad():
        for p in ref_model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return ref_model, copy.deepcopy(ref_model).to(device)


def assert_same(ours_model, ours, ref_model, ref, momentum=True):
    for p_ours, p_ref in zip(ours_model.parameters(), ref_model.parameters()):
        assert rel_diff(p_ours.detach(), p_ref.detach()) <= 1e-6
        if momentum:
            assert rel_diff(ours.state[p_ours]['momentum_buffer'], ref.state[p_ref]['momentum_buffer']) <= 1e-6


CASES = [
    dict(lr=0.3, momentum=0.9, weight_decay=1e-6),
    dict(lr=0.3, momentum=0.9, weight_decay=1e-4, nesterov=True),
    dict(lr=1.0, momentum=0.8, weight_decay=1e-3, dampening=0.1, eta=0.02, eps=1e-3),
    dict(lr=0.5, weight_decay=1e-4),
    dict(lr=0.5, momentum=0.9, weight_decay=0.0, eta=0.005),
]


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('kwargs', CASES)
def test_same_updates_as_mmpretrain(kwargs, device):
    ref_model, ours_model = perturbed_twins(device)
    ref = MMPretrainLARS(groups_of(ref_model), **kwargs)
    ours = LARS(groups_of(ours_model), **kwargs)
    assert [g.get('lars_exclude', False) for g in ours.param_groups] == \
        [g.get('lars_exclude', False) for g in ref.param_groups]
    assert any(g.get('lars_exclude', False) for g in ours.param_groups)

    grads = gradient_sequence(ref_model, steps=6)
    run(ref_model, ref, grads)
    run(ours_model, ours, grads)
    assert_same(ours_model, ours, ref_model, ref, momentum=bool(kwargs.get('momentum', 0)))


def test_zero_weight_or_zero_grad_uses_trust_one_like_mmpretrain():
    params_ref = [nn.Parameter(torch.zeros(4)), nn.Parameter(torch.randn(3, 3)), nn.Parameter(torch.randn(5))]
    params_ours = [nn.Parameter(p.detach().clone()) for p in params_ref]
    grads = [[torch.randn(4), torch.zeros(3, 3), torch.randn(5)] for _ in range(3)]
    ref = MMPretrainLARS(params_ref, lr=0.1, momentum=0.9, weight_decay=1e-4)
    ours = LARS(params_ours, lr=0.1, momentum=0.9, weight_decay=1e-4)
    for step_grads in grads:
        for pr, po, g in zip(params_ref, params_ours, step_grads):
            pr.grad, po.grad = g.clone(), g.clone()
        ref.step()
        ours.step()
    for pr, po in zip(params_ref, params_ours):
        assert rel_diff(po.detach(), pr.detach()) <= 1e-6


def test_late_gradients_with_dampening_like_mmpretrain():
    """A parameter whose first gradient comes at step 2 gets an undamped first momentum step while the others are
    damped (mmpretrain's rule per parameter), and ``grad is None`` parameters are left alone."""
    ref_model, ours_model = perturbed_twins()
    kwargs = dict(lr=0.4, momentum=0.9, dampening=0.3, weight_decay=1e-4)
    ref = MMPretrainLARS(groups_of(ref_model), **kwargs)
    ours = LARS(groups_of(ours_model), **kwargs)
    grads = gradient_sequence(ref_model, steps=4)
    late = {0, 3}  # the two conv weights (adaptive group): no gradient on the first step
    for step, step_grads in enumerate(grads):
        for model in (ref_model, ours_model):
            for i, (p, g) in enumerate(zip(model.parameters(), step_grads)):
                p.grad = None if step == 0 and i in late else g.clone()
        ref.step()
        ours.step()
        if step == 0:
            assert all(p not in ours.state for i, p in enumerate(ours_model.parameters()) if i in late)
    assert_same(ours_model, ours, ref_model, ref)


@pytest.mark.parametrize('device', DEVICES)
def test_channels_last_parameters(device):
    """Channels-last weights (and grads, buffers) get the same update as mmpretrain's on the contiguous twin, and
    stay channels-last."""
    torch.manual_seed(5)
    w = torch.randn(6, 4, 3, 3)
    grads = [torch.randn(6, 4, 3, 3) for _ in range(3)]
    p_ref = nn.Parameter(w.clone())
    p_ours = nn.Parameter(w.clone().to(device, memory_format=torch.channels_last))
    ref = MMPretrainLARS([p_ref], lr=0.2, momentum=0.9, weight_decay=1e-4)
    ours = LARS([p_ours], lr=0.2, momentum=0.9, weight_decay=1e-4)
    for g in grads:
        p_ref.grad = g.clone()
        p_ours.grad = g.clone().to(device, memory_format=torch.channels_last)
        ref.step()
        ours.step()
    assert p_ours.is_contiguous(memory_format=torch.channels_last)
    assert ours.state[p_ours]['momentum_buffer'].is_contiguous(memory_format=torch.channels_last)
    assert rel_diff(p_ours.detach(), p_ref.detach()) <= 1e-6


def test_mixed_dtypes_in_a_group_like_mmpretrain():
    """float32 and float64 parameters in one group: each dtype its own multi-tensor calls, same values."""
    torch.manual_seed(2)
    shapes_dtypes = [((5, 3), torch.float32), ((4, ), torch.float64), ((2, 2, 3), torch.float32),
                     ((7, ), torch.float64)]
    params_ref = [nn.Parameter(torch.randn(s, dtype=d)) for s, d in shapes_dtypes]
    params_ours = [nn.Parameter(p.detach().clone()) for p in params_ref]
    ref = MMPretrainLARS(params_ref, lr=0.3, momentum=0.9, weight_decay=1e-4, nesterov=True)
    ours = LARS(params_ours, lr=0.3, momentum=0.9, weight_decay=1e-4, nesterov=True)
    for _ in range(3):
        for pr, po in zip(params_ref, params_ours):
            g = torch.randn_like(pr)
            pr.grad, po.grad = g.clone(), g.clone()
        ref.step()
        with ForeachRecorder() as rec:
            ours.step()
    assert {args[0][0].dtype for op, args, _ in rec.foreach} == {torch.float32, torch.float64}
    for op, args, _ in rec.foreach:
        assert not fast_path_problems(op, args), fast_path_problems(op, args)
    for pr, po in zip(params_ref, params_ours):
        assert po.dtype == pr.dtype
        assert rel_diff(po.detach(), pr.detach()) <= 1e-6


class ForeachRecorder(TorchDispatchMode):
    """Records the aten ops run inside the mode: every op's name, and each ``_foreach_*`` call's arguments."""

    def __init__(self):
        super().__init__()
        self.ops = Counter()
        self.foreach = []  # (op name, args, kwargs)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        self.ops[str(func)] += 1
        if name.startswith('_foreach_'):
            self.foreach.append((str(func), args, kwargs))
        return func(*args, **kwargs)


def _dense_like(a, b):
    """Same sizes and, but on size-1 dims, the same strides (ATen's _check_tensors_share_sizes_and_strides)."""
    return a.shape == b.shape and all(n == 1 or sa == sb for n, sa, sb in zip(a.shape, a.stride(), b.stride()))


def fast_path_problems(op, args):
    """Why a ``_foreach_*`` call would not take CUDA's multi-tensor kernel (empty: it would), after ATen's
    ForeachUtils.h ``can_use_fast_route``: one device and one dtype for all tensors, strided, non-overlapping and
    dense, the i-th tensors of all lists of the same sizes and strides; ``_foreach_addcmul_.Scalar`` also takes a
    list of 0-d tensors (of the same dtype and device) as ``tensor1`` or ``tensor2`` (ForeachPointwiseOp.cu)."""
    lists = [a for a in args if isinstance(a, (list, tuple)) and a and all(torch.is_tensor(t) for t in a)]
    problems = []
    if op.startswith('aten._foreach_addcmul_') and not op.endswith('.Scalar'):
        problems.append(f'{op}: only the .Scalar overload takes device factors without a host copy')
    scalar_lists = [lst for lst in lists[1:] if all(t.dim() == 0 for t in lst)
                    and not all(t.dim() == 0 for t in lists[0])]
    if scalar_lists:
        if not op.startswith('aten._foreach_addcmul_'):
            problems.append(f'{op}: a list of 0-d tensors against full tensors goes per tensor')
        lists = [lst for lst in lists if lst is not scalar_lists[0]]
    first = lists[0][0]
    for lst in lists + scalar_lists:
        for t in lst:
            if t.device != first.device or t.dtype != first.dtype:
                problems.append(f'{op}: {t.device}/{t.dtype} next to {first.device}/{first.dtype}')
            if t.layout != torch.strided or not (t.dim() == 0 or _non_overlapping_dense(t)):
                problems.append(f'{op}: a tensor of shape {tuple(t.shape)} is not dense')
    for lst in lists[1:]:
        for a, b in zip(lists[0], lst):
            if not _dense_like(a, b):
                problems.append(f'{op}: sizes/strides {tuple(a.shape)}/{a.stride()} vs {tuple(b.shape)}/{b.stride()}')
    return problems


def _non_overlapping_dense(t):
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


def recorded_step(blocks, kwargs, device='cpu'):
    model = small_model(blocks).to(device)
    opt = LARS(groups_of(model), **kwargs)
    for p, g in zip(model.parameters(), gradient_sequence(model, 1)[0]):
        p.grad = g.to(device)
    opt.step()  # the first step creates the momentum buffers (one zeros_like each)
    with ForeachRecorder() as rec:
        opt.step()
    return model, rec


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('kwargs', [CASES[0], CASES[1], CASES[3]], ids=['momentum', 'nesterov', 'plain'])
def test_update_is_multi_tensor_and_fast_path_eligible(kwargs, device):
    """Each ``_foreach_*`` call gets one device and dtype and lists CUDA's multi-tensor kernel accepts; the number of
    ops in a step does not grow with the number of parameters (no per-parameter loop in the update)."""
    model, rec = recorded_step(1, kwargs, device)
    big_model, big_rec = recorded_step(4, kwargs, device)
    assert sum(1 for _ in big_model.parameters()) > sum(1 for _ in model.parameters()) + 8
    assert big_rec.ops == rec.ops  # same ops, same counts
    names = [op for op, _, _ in rec.foreach]
    assert names.count('aten._foreach_norm.Scalar') == 2  # |w| and |g| of the one adaptive group
    assert 'aten._foreach_addcmul_.Scalar' in names  # the per-parameter step sizes as device 0-d tensors
    for op, args, _ in rec.foreach:
        assert not fast_path_problems(op, args), fast_path_problems(op, args)
    # the recorder flags what falls back to per-tensor kernels: the same step with 0-d factors via _foreach_mul_
    p = [torch.ones(3, 2, device=device), torch.ones(4, device=device)]
    assert fast_path_problems('aten._foreach_mul_.List', (p, [torch.tensor(2.0, device=device)] * 2))
    assert fast_path_problems('aten._foreach_sub_.List', (p, [p[0].t().contiguous().t(), p[1]]))


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('kwargs', [CASES[1], CASES[2], CASES[3]], ids=['nesterov', 'damped', 'plain'])
def test_no_host_sync_during_step(kwargs, device):
    """The trust ratios stay on the device: no ``.item()``, ``bool(tensor)``, boolean indexing, device -> host copy
    or tensor from Python numbers inside ``step()`` (mmpretrain's step, counted the same way, has them)."""
    ref_model, model = perturbed_twins(device)
    ours = LARS(groups_of(model), **kwargs)
    ref = MMPretrainLARS(groups_of(ref_model), **kwargs)
    grads = gradient_sequence(model, 2)
    for opt, m, step_grads in ((ours, model, grads[0]), (ours, model, grads[1]), (ref, ref_model, grads[0])):
        for p, g in zip(m.parameters(), step_grads):
            p.grad = g.to(p.device)
        with SyncCounter() as syncs:
            opt.step()
        if opt is ours:
            assert syncs.total == 0, syncs.summary()
        else:
            assert syncs.counts['item'] > 0, 'the counter must see mmpretrain\'s .item() calls'


def test_continues_from_mmpretrain_state_dict():
    """A checkpoint of mmpretrain's LARS resumes in ours with the same subsequent updates."""
    ref_model = small_model()
    ours_model = copy.deepcopy(ref_model)
    ref = MMPretrainLARS(groups_of(ref_model), lr=0.3, momentum=0.9, weight_decay=1e-5)
    grads = gradient_sequence(ref_model, steps=4)
    run(ref_model, ref, grads[:2])
    ours_model.load_state_dict(ref_model.state_dict())
    ours = LARS(groups_of(ours_model), lr=0.3, momentum=0.9, weight_decay=1e-5)
    ours.load_state_dict(copy.deepcopy(ref.state_dict()))  # as if read from a checkpoint file
    run(ref_model, ref, grads[2:])
    run(ours_model, ours, grads[2:])
    for p_ours, p_ref in zip(ours_model.parameters(), ref_model.parameters()):
        assert rel_diff(p_ours.detach(), p_ref.detach()) <= 1e-6


def test_registered_as_lars_in_mmsimclr_scope():
    model = small_model()
    with DefaultScope.overwrite_default_scope('mmsimclr'):
        opt = OPTIMIZERS.build(dict(type='LARS', params=model.parameters(), lr=0.1))
    assert type(opt) is LARS
    from mmengine.optim import build_optim_wrapper
    with DefaultScope.overwrite_default_scope('mmsimclr'):
        wrapper = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(type='LARS', lr=0.1,
                                                                                      weight_decay=1e-6),
                                                  constructor='SimCLROptimWrapperConstructor'))
    assert type(wrapper.optimizer) is LARS
    excluded = [g for g in wrapper.optimizer.param_groups if g['lars_exclude']]
    assert excluded and all(g['weight_decay'] == 0 for g in excluded)


@pytest.mark.parametrize('kwargs', [dict(lr=-1.0), dict(lr=0.1, momentum=-0.1), dict(lr=0.1, weight_decay=-1.0),
                                    dict(lr=0.1, eta=-1.0), dict(lr=0.1, nesterov=True)])
def test_rejects_invalid_arguments(kwargs):
    with pytest.raises(ValueError, match='LARS'):
        LARS([nn.Parameter(torch.zeros(2))], **kwargs)


def test_rejects_sparse_gradients():
    p = nn.Parameter(torch.randn(4, 3))
    p.grad = torch.randn(4, 3).to_sparse()
    with pytest.raises(RuntimeError, match='LARS does not support sparse gradients'):
        LARS([p], lr=0.1).step()
