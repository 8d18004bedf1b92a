"""Speed options of the training step: channels-last, AMP (bf16) and torch.compile run and keep the numbers.

The reference for the values is the same model in the default settings (and mmpretrain's SimCLR for the loss);
speed itself is measured by tools/benchmark/train_step.py, not here.
"""
import copy
import os.path as osp
import sys

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mmsimclr.registry import MODELS
from mmsimclr.utils import register_all_modules

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')
register_all_modules(init_default_scope=False)


def tiny_simclr(scope='mmsimclr', **kwargs):
    """ResNet-18 layout with 8 base channels, plain BN; ``scope`` 'mmpretrain' builds mmpretrain's SimCLR."""
    head_loss = dict(type='mmpretrain.CrossEntropyLoss') if scope == 'mmpretrain' else dict(type='NTXentLoss')
    cfg = dict(
        type=f'{scope}.SimCLR',
        data_preprocessor=dict(type='mmpretrain.SelfSupDataPreprocessor', mean=[127.5] * 3, std=[64.0] * 3,
                               to_rgb=True),
        backbone=dict(type='mmpretrain.ResNet', depth=18, stem_channels=8, base_channels=8, out_indices=(3, ),
                      norm_cfg=dict(type='BN')),
        neck=dict(type=f'{scope}.NonLinearNeck', in_channels=64, hid_channels=32, out_channels=16,
                  norm_cfg=dict(type='BN1d')),
        head=dict(type=f'{scope}.ContrastiveHead', loss=head_loss, temperature=0.2),
        **kwargs)
    with DefaultScope.overwrite_default_scope(scope):
        registry = MODELS if scope == 'mmsimclr' else __import__('mmpretrain.registry', fromlist=['MODELS']).MODELS
        return registry.build(cfg)


def wrapper_for(model, **kwargs):
    cfg = dict(type='OptimWrapper', optimizer=dict(type='LARS', lr=0.1, momentum=0.9, weight_decay=1e-6),
               constructor='SimCLROptimWrapperConstructor')
    cfg.update(kwargs)
    with DefaultScope.overwrite_default_scope('mmsimclr'):
        return build_optim_wrapper(model, cfg)


def batch(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(inputs=[torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
                        for _ in range(2)], data_samples=None)


def steps(model, wrapper, n=3):
    return [model.train_step(copy.copy(batch(seed=i)), wrapper)['loss'].item() for i in range(n)]


def test_default_step_loss_equals_mmpretrain():
    """Same weights, same images: our train_step's loss is mmpretrain SimCLR's loss."""
    torch.manual_seed(0)
    ref = tiny_simclr('mmpretrain')
    ours = tiny_simclr()
    ours.load_state_dict(ref.state_dict())
    data = batch()
    ref_loss = ref._run_forward(ref.data_preprocessor(copy.copy(data), True), mode='loss')['loss']
    ours_loss = ours._run_forward(ours.data_preprocessor(copy.copy(data), True), mode='loss')['loss']
    torch.testing.assert_close(ours_loss, ref_loss, rtol=1e-5, atol=0)


def loss_and_grads(model, data):
    model.zero_grad()
    loss = model._run_forward(model.data_preprocessor(copy.copy(data), True), mode='loss')['loss']
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def test_channels_last_same_values_as_default():
    torch.manual_seed(0)
    default = tiny_simclr()
    fast = tiny_simclr(channels_last=True)
    fast.load_state_dict(default.state_dict())
    assert fast.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not default.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    loss_default, grads_default = loss_and_grads(default, batch())
    loss_fast, grads_fast = loss_and_grads(fast, batch())
    torch.testing.assert_close(loss_fast, loss_default, rtol=1e-5, atol=0)
    for g_fast, g_default in zip(grads_fast, grads_default):
        assert ((g_fast - g_default).norm() / g_default.norm().clamp_min(1e-12)).item() < 1e-3
    # a few full train steps (LARS) run and keep the weights channels-last
    losses = steps(fast, wrapper_for(fast))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert fast.backbone.layer1[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    # evaluation path: same embeddings as the default model with the same weights
    default.load_state_dict(fast.state_dict())
    x = torch.randn(2, 3, 32, 32)
    default.eval(), fast.eval()
    torch.testing.assert_close(fast.embed(x)['feat'], default.embed(x)['feat'], rtol=1e-4, atol=1e-5)


def test_amp_bf16_step_runs_close_to_fp32():
    torch.manual_seed(0)
    fp32 = tiny_simclr()
    amp = tiny_simclr()
    amp.load_state_dict(fp32.state_dict())
    before = [p.detach().clone() for p in amp.parameters()]
    wrapper = wrapper_for(amp, type='BF16OptimWrapper')
    losses_amp = steps(amp, wrapper, n=2)
    losses_fp32 = steps(fp32, wrapper_for(fp32), n=2)
    assert all(torch.isfinite(torch.tensor(losses_amp)))
    assert losses_amp == pytest.approx(losses_fp32, rel=0.15)  # bf16 has an 8-bit mantissa; tiny random model
    assert any(not torch.equal(b, p) for b, p in zip(before, amp.parameters()))
    assert all(p.dtype == torch.float32 for p in amp.parameters())  # master weights stay fp32
    # the forward really ran in bf16: the same step in fp32 gives a (slightly) different loss
    assert losses_amp[0] != losses_fp32[0]
    assert type(wrapper).__module__.startswith('mmsimclr')


@pytest.mark.parametrize('capability,expected', [(None, 'BF16OptimWrapper'), ((8, 0), 'BF16OptimWrapper'),
                                                 ((9, 0), 'BF16OptimWrapper'), ((7, 0), 'AmpOptimWrapper'),
                                                 ((7, 5), 'AmpOptimWrapper')],
                         ids=['cpu', 'A100', 'H100', 'V100', 'T4'])
def test_amp_picks_native_bf16_else_fp16_with_scaler(monkeypatch, capability, expected):
    """``--amp``: bf16 without a loss scaler on CPUs and GPUs that run bf16 natively; fp16 + dynamic scaler on
    older GPUs, where ``torch.cuda.is_bf16_supported()`` says True through slow emulation. The capability is read
    without creating a CUDA tensor."""
    from mmsimclr.engine.optimizers import amp_optim_wrapper_cfg
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: capability is not None)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: pytest.fail('must not be asked'))
    cfg = amp_optim_wrapper_cfg(dict(type='OptimWrapper', optimizer=dict(type='LARS', lr=0.1), dtype='float16'),
                                local_rank=1)
    assert cfg['type'] == expected and cfg['optimizer'] == dict(type='LARS', lr=0.1)
    if expected == 'AmpOptimWrapper':
        assert cfg['dtype'] == 'float16' and cfg['loss_scale'] == 'dynamic'
    else:
        assert 'dtype' not in cfg and 'loss_scale' not in cfg


def _compile_works():
    try:
        torch.compile(lambda x: x * 2)(torch.ones(2))
        return True
    except Exception:  # no compiler tool chain / unsupported platform
        return False


def test_compiled_train_step_matches_eager_and_compiles_once():
    """``cfg.compile`` (mmengine compiles ``train_step``): same losses as eager while the scheduler changes the
    learning rate every step, and no recompilation after the first step (LARS.step stays out of the graph; traced,
    each new lr would recompile it). The ``aot_eager`` backend runs Dynamo's capture and AOT autograd, the parts our
    code can break, without inductor's C++ code generation, which takes minutes on a cold 2-core machine."""
    if not hasattr(torch, 'compile') or not _compile_works():
        pytest.skip('torch.compile is not available here')
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    eager = tiny_simclr()
    compiled = tiny_simclr()
    compiled.load_state_dict(eager.state_dict())
    wrappers = {'eager': wrapper_for(eager), 'compiled': wrapper_for(compiled)}
    compiled.train_step = torch.compile(compiled.train_step, backend='aot_eager')  # as mmengine's _maybe_compile
    losses = {'eager': [], 'compiled': []}
    graphs = []
    for i in range(3):
        for name, model in (('eager', eager), ('compiled', compiled)):
            for group in wrappers[name].optimizer.param_groups:
                group['lr'] = 0.1 * (i + 1)  # what a warm-up scheduler does between iterations
            losses[name].append(model.train_step(copy.copy(batch(seed=i)), wrappers[name])['loss'].item())
        graphs.append(counters['stats']['unique_graphs'])
    assert losses['compiled'] == pytest.approx(losses['eager'], rel=1e-4)
    assert graphs[0] > 0, 'nothing was compiled'
    assert graphs[1] == graphs[0] == graphs[2], f'recompiled after the first step: graphs per step {graphs}'
    # the weights moved identically
    for p_c, p_e in zip(compiled.parameters(), eager.parameters()):
        torch.testing.assert_close(p_c, p_e, rtol=1e-4, atol=1e-6)


def test_train_tool_flags_set_config():
    sys.path.insert(0, ROOT)
    from tools.train import build_config, parse_args
    cfg = build_config(parse_args([TINY, '--channels-last', '--compile', '--amp']))
    assert cfg.model.channels_last is True and cfg.compile is True
    assert cfg.optim_wrapper.type == 'BF16OptimWrapper' and 'loss_scale' not in cfg.optim_wrapper
    assert build_config(parse_args([TINY])).get('compile') is None


def test_train_tool_config_trains_with_channels_last_and_amp(tiny_data, tmp_path):
    """The config that ``tools/train.py --channels-last --amp`` builds trains (1 epoch of the tiny config)."""
    sys.path.insert(0, ROOT)
    from mmengine.runner import Runner

    from tools.train import build_config, parse_args
    cfg = build_config(parse_args([
        TINY, '--channels-last', '--amp', '--work-dir', str(tmp_path), '--cfg-options',
        f'train_dataloader.dataset.data_root={tiny_data}', 'train_cfg.max_epochs=1',
        'train_dataloader.batch_size=16', 'default_hooks.checkpoint.interval=1']))
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    assert model.channels_last and model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert type(runner.optim_wrapper).__name__ == 'BF16OptimWrapper'
    assert osp.isfile(osp.join(tmp_path, 'epoch_1.pth'))
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert loss == loss and 0 < loss < 20  # finite NT-Xent value
