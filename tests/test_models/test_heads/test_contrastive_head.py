"""ContrastiveHead: mmpretrain's ``loss(pos, neg)`` contract gives mmpretrain's numbers (its head is the oracle), the
multi-view ``loss(z, num_views=V)`` contract gives NT-Xent, and mmpretrain's MoCo v2 and DenseCL run with our head
in the ``mmsimclr`` scope."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmpretrain.models.heads import ContrastiveHead as MMPretrainHead
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from mmsimclr.models.heads import ContrastiveHead
from mmsimclr.models.losses import NTXentLoss
from mmsimclr.registry import MODELS


def _pos_neg(seed, n=6, k=10):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, generator=g), torch.randn(n, k, generator=g)


def _mmpretrain_head(loss, temperature):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MMPRETRAIN_MODELS.build(dict(type='ContrastiveHead', loss=loss, temperature=temperature))


@pytest.mark.parametrize('loss', [
    dict(type='CrossEntropyLoss'),
    dict(type='mmpretrain.CrossEntropyLoss', loss_weight=0.5),
    dict(type='CrossEntropyLoss', reduction='sum'),
    dict(type='CrossEntropyLoss', class_weight=[2.0] + [1.0] * 10),
], ids=['plain', 'loss_weight', 'sum', 'class_weight'])
@pytest.mark.parametrize('temperature', [0.07, 0.2, 1.0])
def test_pos_neg_contract_equals_mmpretrain(loss, temperature):
    ref = _mmpretrain_head(copy.deepcopy(loss), temperature)
    ours = MODELS.build(dict(type='ContrastiveHead', loss=copy.deepcopy(loss), temperature=temperature))
    assert type(ours) is ContrastiveHead and type(ref) is MMPretrainHead
    pos, neg = _pos_neg(seed=int(temperature * 100))
    ref_in = [pos.clone().requires_grad_(), neg.clone().requires_grad_()]
    our_in = [pos.clone().requires_grad_(), neg.clone().requires_grad_()]
    expected, got = ref.loss(*ref_in), ours.loss(*our_in)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    expected.backward(), got.backward()
    for a, b in zip(our_in, ref_in):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-8)
    assert ours.state_dict() == {} and ref.state_dict() == {}
    # the inputs are left as they were (mmpretrain divides a concatenated copy in place, so does not touch them)
    assert torch.equal(our_in[0].detach(), pos) and torch.equal(our_in[1].detach(), neg)


def _nt_xent_as_pos_neg(z, temperature):
    """NT-Xent for two views written as the cross-entropy over each anchor's [positive, negatives] cosine logits,
    so mmpretrain's head scores it: rows are sample-major (2i, 2i + 1 are the views of image i)."""
    zn = F.normalize(z, dim=1)
    sim = zn @ zn.t()
    m = z.shape[0]
    partner = torch.arange(m) ^ 1
    pos = sim[torch.arange(m), partner][:, None]
    keep = ~torch.eye(m, dtype=torch.bool)
    keep[torch.arange(m), partner] = False
    neg = sim[keep].view(m, m - 2)
    return pos, neg


@pytest.mark.parametrize('loss', [dict(type='CrossEntropyLoss'), dict(type='CrossEntropyLoss', loss_weight=0.3),
                                  dict(type='NTXentLoss'), dict(type='mmsimclr.NTXentLoss', loss_weight=0.3)],
                         ids=['ce', 'ce-weighted', 'ntxent', 'ntxent-weighted'])
def test_multiview_contract_is_nt_xent(loss):
    temperature = 0.2
    ours = MODELS.build(dict(type='ContrastiveHead', loss=copy.deepcopy(loss), temperature=temperature))
    ref = _mmpretrain_head(dict(type='CrossEntropyLoss', loss_weight=loss.get('loss_weight', 1.0)), temperature)
    z = torch.randn(10, 8, generator=torch.Generator().manual_seed(3))
    expected = ref.loss(*_nt_xent_as_pos_neg(z, temperature))
    torch.testing.assert_close(ours.loss(z, num_views=2), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.loss(z), expected, rtol=1e-5, atol=1e-6)  # num_views defaults to 2
    assert isinstance(ours.multiview_loss, NTXentLoss) and ours.multiview_loss.temperature == temperature


def test_temperature_in_the_nt_xent_config_wins():
    head = ContrastiveHead(loss=dict(type='NTXentLoss', temperature=0.5), temperature=0.1)
    assert head.multiview_loss.temperature == 0.5


def test_nt_xent_head_refuses_pos_neg_with_the_fix():
    head = ContrastiveHead(loss=dict(type='NTXentLoss'))
    with pytest.raises(ValueError, match="loss=dict\\(type='CrossEntropyLoss'\\)"):
        head.loss(*_pos_neg(0))


def test_non_plain_cross_entropy_keeps_only_the_pos_neg_contract():
    head = ContrastiveHead(loss=dict(type='CrossEntropyLoss', reduction='sum'))
    assert torch.isfinite(head.loss(*_pos_neg(1)))
    with pytest.raises(ValueError, match="reduction.*is not NT-Xent"):
        head.loss(torch.randn(4, 8), num_views=2)


def test_bad_calls_are_explained():
    head = ContrastiveHead(loss=dict(type='CrossEntropyLoss'))
    pos, neg = _pos_neg(2)
    with pytest.raises(TypeError, match='not both'):
        head.loss(pos, neg, num_views=2)
    with pytest.raises(ValueError, match=r'pos \(N, 1\) and neg \(N, k\)'):
        head.loss(pos, neg[:3])
    with pytest.raises(ValueError, match=r'\(n \* V, d\) projections'):
        head.loss(torch.randn(2, 3, 4), num_views=2)
    with pytest.raises(ValueError, match='temperature'):
        ContrastiveHead(loss=dict(type='NTXentLoss'), temperature=0)
    with pytest.raises(TypeError, match='config dict'):
        ContrastiveHead(loss='CrossEntropyLoss')


@pytest.mark.parametrize('scope', [None, 'mmpretrain', 'mmsimclr'])
def test_loss_config_resolves_in_any_default_scope(scope, monkeypatch):
    from collections import OrderedDict
    monkeypatch.setattr(DefaultScope, '_instance_dict', OrderedDict())  # no default scope; restored afterwards
    if scope is not None:
        DefaultScope.get_instance(f'test-head-{scope}', scope_name=scope)
    assert isinstance(ContrastiveHead(loss=dict(type='NTXentLoss')).loss_module, NTXentLoss)
    assert type(ContrastiveHead(loss=dict(type='CrossEntropyLoss')).loss_module).__module__.startswith('mmpretrain')


# mmpretrain's MoCo v2 and DenseCL on a narrow ResNet-18, built by name in the mmsimclr scope (where
# 'ContrastiveHead' is ours) and in the mmpretrain scope (its own head): same weights, same seed -> same losses.
_BACKBONE = dict(type='ResNet', depth=18, stem_channels=8, base_channels=8, norm_cfg=dict(type='BN'))
_PREPROCESSOR = dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), to_rgb=True)
_HEAD = dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'), temperature=0.2)
ALGORITHMS = {
    'mocov2': dict(type='MoCo', queue_len=16, feat_dim=4, momentum=0.01,
                   neck=dict(type='MoCoV2Neck', in_channels=64, hid_channels=8, out_channels=4, with_avg_pool=True)),
    'densecl': dict(type='DenseCL', queue_len=16, feat_dim=4, momentum=0.01, loss_lambda=0.5,
                    neck=dict(type='DenseCLNeck', in_channels=64, hid_channels=8, out_channels=4, num_grid=None)),
}


def _build(name, scope):
    cfg = dict(ALGORITHMS[name], backbone=_BACKBONE, head=_HEAD, data_preprocessor=_PREPROCESSOR)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(copy.deepcopy(cfg))


def _loss(model, data, seed):
    torch.manual_seed(seed)  # the key encoder's batch shuffle draws a permutation
    return model(**model.data_preprocessor(copy.deepcopy(data), True), mode='loss')


@pytest.mark.parametrize('name', sorted(ALGORITHMS))
def test_mmpretrain_contrastive_algorithms_run_with_our_head(name):
    ours, ref = _build(name, 'mmsimclr'), _build(name, 'mmpretrain')
    assert type(ours.head) is ContrastiveHead and type(ref.head) is MMPretrainHead
    ours.load_state_dict(ref.state_dict(), strict=True)
    g = torch.Generator().manual_seed(0)
    data = dict(inputs=[torch.randint(0, 256, (4, 3, 64, 64), generator=g, dtype=torch.uint8) for _ in range(2)],
                data_samples=None)
    got, expected = _loss(ours, data, seed=1), _loss(ref, data, seed=1)
    assert set(got) == set(expected) == ({'loss_single', 'loss_dense'} if name == 'densecl' else {'loss'})
    for key in expected:
        assert torch.isfinite(got[key]) and got[key] > 0
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)
    assert ours.queue_ptr.item() == 4  # the queue advanced by the batch, as in mmpretrain's own test
    sum(got.values()).backward()  # a full loss step: the gradient reaches the backbone
    assert ours.backbone.conv1.weight.grad is not None and ours.backbone.conv1.weight.grad.abs().sum() > 0
