"""mmsimclr's LARS against mmpretrain's LARS (the oracle) on the same parameters, groups and gradients."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.registry import DefaultScope
from mmpretrain.engine.optimizers import LARS as MMPretrainLARS

from mmsimclr.engine.optimizers import LARS, SimCLROptimWrapperConstructor
from mmsimclr.registry import OPTIMIZERS


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.GroupNorm(2, 8),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4, bias=False))


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
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def run(model, opt, grads):
    for step_grads in grads:
        for p, g in zip(model.parameters(), step_grads):
            p.grad = g.clone()
        opt.step()


CASES = [
    dict(lr=0.3, momentum=0.9, weight_decay=1e-6),
    dict(lr=0.3, momentum=0.9, weight_decay=1e-4, nesterov=True),
    dict(lr=1.0, momentum=0.8, weight_decay=1e-3, dampening=0.1, eta=0.02, eps=1e-3),
    dict(lr=0.5, weight_decay=1e-4),
    dict(lr=0.5, momentum=0.9, weight_decay=0.0, eta=0.005),
]


# (foreach, block_size, fused): multi-tensor ops on whole tensors, on 37-element blocks (slices across
# parameters), per-parameter ops on 50-element slices, and the fused compiled kernel for tensors of >= 100
# elements with the others unfused; the model's tensors have up to 216 elements
MODES = [(True, None, False), (True, 37, False), (False, 50, False), (False, None, False), (True, None, True)]


def make_lars(params, mode, **kwargs):
    foreach, block_size, fused = mode
    return LARS(params, foreach=foreach, block_size=block_size, fused=fused, fused_min_numel=100, **kwargs)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('kwargs', CASES)
def test_same_updates_as_mmpretrain(kwargs, mode):
    ref_model = small_model()
    ours_model = copy.deepcopy(ref_model)
    with torch.no_grad():  # no zero-valued weights: every parameter in an adaptive group gets a real trust ratio
        for p in ref_model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for p_ours, p_ref in zip(ours_model.parameters(), ref_model.parameters()):
            p_ours.copy_(p_ref)
    ref = MMPretrainLARS(groups_of(ref_model), **kwargs)
    ours = make_lars(groups_of(ours_model), mode, **kwargs)
    assert [g.get('lars_exclude', False) for g in ours.param_groups] == \
        [g.get('lars_exclude', False) for g in ref.param_groups]
    assert any(g.get('lars_exclude', False) for g in ours.param_groups)

    grads = gradient_sequence(ref_model, steps=6)
    run(ref_model, ref, grads)
    run(ours_model, ours, grads)
    for p_ours, p_ref in zip(ours_model.parameters(), ref_model.parameters()):
        assert rel_diff(p_ours.detach(), p_ref.detach()) <= 1e-6
        if kwargs.get('momentum', 0):
            assert rel_diff(ours.state[p_ours]['momentum_buffer'], ref.state[p_ref]['momentum_buffer']) <= 1e-6


@pytest.mark.parametrize('mode', MODES)
def test_zero_weight_or_zero_grad_uses_trust_one_like_mmpretrain(mode):
    params_ref = [nn.Parameter(torch.zeros(4)), nn.Parameter(torch.randn(3, 3)), nn.Parameter(torch.randn(5))]
    params_ours = [nn.Parameter(p.detach().clone()) for p in params_ref]
    grads = [[torch.randn(4), torch.zeros(3, 3), torch.randn(5)] for _ in range(3)]
    ref = MMPretrainLARS(params_ref, lr=0.1, momentum=0.9, weight_decay=1e-4)
    ours = LARS(params_ours, lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=mode[0], block_size=mode[1],
                fused=mode[2], fused_min_numel=4)
    for step_grads in grads:
        for pr, po, g in zip(params_ref, params_ours, step_grads):
            pr.grad, po.grad = g.clone(), g.clone()
        ref.step()
        ours.step()
    for pr, po in zip(params_ref, params_ours):
        assert rel_diff(po.detach(), pr.detach()) <= 1e-6


@pytest.mark.parametrize('fused', [False, True])
def test_no_host_sync_during_step(monkeypatch, fused):
    """The trust ratios stay on the device: no .item()/float()/bool() of a tensor inside step()."""
    model = small_model()
    opt = LARS(groups_of(model), lr=0.1, momentum=0.9, weight_decay=1e-6, nesterov=True, fused=fused,
               fused_min_numel=100)
    for g, p in zip(gradient_sequence(model, 1)[0], model.parameters()):
        p.grad = g
    if fused:
        opt.step()  # compile the kernel first: compilation itself may read tensors on the host

    def forbidden(*args, **kwargs):
        raise AssertionError('host synchronisation in LARS.step')

    for name in ('item', '__float__', '__bool__', 'tolist', '__int__'):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    opt.step()
    opt.step()


@pytest.mark.parametrize('shape, seed, options', [
    ((6, 4, 3, 3), 5, dict(block_size=10)),  # blocks are slices in memory order
    ((16, 8, 3, 3), 6, dict(fused=True, fused_min_numel=1)),  # the fused kernel runs over memory order
], ids=['blocked', 'fused'])
def test_channels_last_parameters(shape, seed, options):
    """Channels-last weights (and their grads/buffers) stay aligned with their flat views: same update as
    mmpretrain's on the contiguous twin, and the weights stay channels-last."""
    torch.manual_seed(seed)
    w = torch.randn(*shape)
    grads = [torch.randn(*shape) for _ in range(3)]
    p_ref = nn.Parameter(w.clone())
    p_ours = nn.Parameter(w.clone().to(memory_format=torch.channels_last))
    ref = MMPretrainLARS([p_ref], lr=0.2, momentum=0.9, weight_decay=1e-4)
    ours = LARS([p_ours], lr=0.2, momentum=0.9, weight_decay=1e-4, **options)
    for g in grads:
        p_ref.grad = g.clone()
        p_ours.grad = g.clone().to(memory_format=torch.channels_last)
        ref.step()
        ours.step()
    assert p_ours.is_contiguous(memory_format=torch.channels_last)
    assert rel_diff(p_ours.detach(), p_ref.detach()) <= 1e-6


def test_fused_compile_failure_warns_and_falls_back(monkeypatch):
    """Without a working compiler the step warns once, naming the cause, and gives the same values unfused."""
    from mmsimclr.engine.optimizers import lars_fused

    def no_compiler(fn, **kwargs):
        def fail(*args):
            raise RuntimeError('InvalidCxxCompiler: No working C++ compiler found')
        return fail

    monkeypatch.setattr(lars_fused, '_failure', None)
    monkeypatch.setattr(lars_fused, '_compiled', {})
    monkeypatch.setattr(lars_fused.torch, 'compile', no_compiler)
    ref_model = small_model()
    ours_model = copy.deepcopy(ref_model)
    ref = MMPretrainLARS(groups_of(ref_model), lr=0.3, momentum=0.9, weight_decay=1e-5)
    ours = LARS(groups_of(ours_model), lr=0.3, momentum=0.9, weight_decay=1e-5, fused=True, fused_min_numel=1)
    grads = gradient_sequence(ref_model, steps=3)
    with pytest.warns(RuntimeWarning, match='No working C.. compiler.*unfused update'):
        run(ours_model, ours, grads[:1])
    run(ours_model, ours, grads[1:])  # no second attempt, no second warning needed
    run(ref_model, ref, grads)
    assert not lars_fused.available()
    for p_ours, p_ref in zip(ours_model.parameters(), ref_model.parameters()):
        assert rel_diff(p_ours.detach(), p_ref.detach()) <= 1e-6


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
                                    dict(lr=0.1, eta=-1.0), dict(lr=0.1, nesterov=True),
                                    dict(lr=0.1, block_size=0)])
def test_rejects_invalid_arguments(kwargs):
    with pytest.raises(ValueError, match='LARS'):
        LARS([nn.Parameter(torch.zeros(2))], **kwargs)
