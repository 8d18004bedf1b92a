"""No device -> host synchronisation in a SimCLR training step with the batched augmentation (blur on).

Counted with ``tests.sync_counter.SyncCounter`` (a ``TorchDispatchMode`` over ``model.train_step``), on the CPU,
as the aten ops that would make the host wait for a GPU. For scale (not asserted; counted with the same mode over
the second ``train_step`` of ``tests/test_engine/test_train_step_options.tiny_simclr('mmpretrain')`` with
mmpretrain's LARS, 66 parameter tensors): mmpretrain 1.2.0's SimCLR makes 137 per step (132 ``item``, 3 tensors
from Python data, 2 ``masked_select``). This preprocessor made 40 per step before the fix (19 ``nonzero`` on the
device masks, 21 tensors from Python data: the BGR index list, the per-sample sizes and ``shift_hue``'s constants).
"""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmsimclr.models.data_preprocessors import SimCLRDataPreprocessor
from mmsimclr.registry import MODELS
from tests.sync_counter import SyncCounter

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def test_counter_counts_each_host_blocking_op_and_nothing_else():
    x = torch.rand(6, 3, generator=torch.Generator().manual_seed(0))
    mask = x[:, 0] > 0.5
    cases = {
        'item': [lambda: x.sum().item(), lambda: bool(x.sum() > 0), lambda: torch.equal(x, x)],
        'nonzero': [lambda: mask.nonzero(), lambda: torch.where(mask)],
        'bool-mask index': [lambda: x[mask], lambda: x.clone().index_put_((mask, ), torch.zeros(3))],
        'masked_select': [lambda: x.masked_select(mask.view(-1, 1))],
        'unique': [lambda: torch.unique(x), lambda: torch.unique_consecutive(x)],
        'repeat_interleave': [lambda: x.repeat_interleave(torch.full((6, ), 2), dim=0)],
        'tensor from Python data': [lambda: torch.tensor([5., 3., 1.]), lambda: x[:, [2, 1, 0]]],
    }
    for kind, calls in cases.items():
        for call in calls:
            with SyncCounter() as syncs:
                call()
            assert syncs.counts[kind] >= 1, (kind, syncs.summary())
    with SyncCounter() as syncs:  # what the batched augmentation uses instead
        torch.where(mask.view(-1, 1), x.flip(-1), x)
        x[torch.arange(3)]
        x.repeat_interleave(2, dim=0)
        x.repeat_interleave(torch.full((6, ), 2), dim=0, output_size=12)
        torch.arange(5., 0., -2.)
        torch.rand(4, generator=torch.Generator().manual_seed(0)).argsort()
        x.flip(1).to('cpu')
    assert syncs.total == 0, syncs.summary()


def test_counter_flags_blocking_copies_between_devices():
    """Device copies need two devices: ``meta`` stands in for the GPU (it runs no kernels; a copy out of it cannot
    run, so that direction is classified directly)."""
    with SyncCounter() as syncs:
        torch.rand(3).to('meta')
        torch.rand(3).to('meta', non_blocking=True)  # pageable memory: blocking all the same
    assert syncs.counts == {'blocking host -> device copy': 2}, syncs.summary()
    aten = torch.ops.aten
    device, host = torch.empty(3, device='meta'), torch.empty(3)
    assert SyncCounter()._kind(aten._to_copy.default, (device, ), {}, host) == 'device -> host copy'
    assert SyncCounter()._kind(aten.copy_.default, (host, device), {}, host) == 'device -> host copy'
    assert SyncCounter()._kind(aten.copy_.default, (host, device, True), {}, host) is None  # non_blocking


def _batchaug_model_and_wrapper(blur_prob=0.5):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny_batchaug.py'))
    cfg.model.data_preprocessor.blur_prob = blur_prob
    cfg.model.data_preprocessor.blur_kernel_frac = 0.2  # kernel 7 on 32 px: a real blur
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert isinstance(model.data_preprocessor, SimCLRDataPreprocessor)
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def _uint8_batch(n=4, seed=0):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return dict(inputs=images, data_samples=[DataSample(metainfo=dict(ori_shape=(30 + i, 40))) for i in range(n)])


def test_train_step_makes_no_host_syncs():
    """Batched augmentation (crop, flip, colour, gray, blur on the device) + SimCLR + LARS: 0 syncs per step."""
    model, wrapper = _batchaug_model_and_wrapper()
    assert model.data_preprocessor.blur_prob == 0.5 and model.data_preprocessor.kernel_size() == 7
    model.train_step(copy.copy(_uint8_batch(seed=0)), wrapper)  # the first step creates the optimizer state
    before = [p.detach().clone() for p in model.parameters()]
    with SyncCounter() as syncs:
        losses = model.train_step(copy.copy(_uint8_batch(seed=1)), wrapper)
    assert syncs.total == 0, f'{syncs.summary()}: {syncs.records[:10]}'
    assert torch.isfinite(losses['loss'])
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))  # the step really trained


def test_views_made_on_the_cpu_and_evaluation_make_no_host_syncs():
    """The same preprocessor given the loader's views (a list) or in evaluation: SelfSupDataPreprocessor's
    result, without its BGR index list (a blocking host -> device copy per view on a GPU)."""
    pre = SimCLRDataPreprocessor(mean=[125.3, 123.0, 113.9], std=[51.6, 50.8, 51.3], to_rgb=True, size=32)
    batch = _uint8_batch(n=4)
    views = [batch['inputs'], batch['inputs'].flip(-1)]
    with SyncCounter() as syncs:
        out = pre(dict(inputs=views, data_samples=batch['data_samples']), training=True)['inputs']
        evaluated = pre(dict(batch), training=False)['inputs']
    assert syncs.total == 0, syncs.summary()
    for got, x in zip(out + [evaluated], views + [batch['inputs']]):
        torch.testing.assert_close(got, (x[:, [2, 1, 0]].float() - pre.mean) / pre.std, rtol=0, atol=0)
    with pytest.raises(ValueError, match='to_rgb=True swaps 3 colour channels'):
        pre(dict(inputs=torch.zeros(2, 1, 8, 8, dtype=torch.uint8)), training=False)
