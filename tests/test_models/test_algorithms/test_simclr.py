"""SimCLR against mmpretrain's: same state-dict layout, same loss, same features."""
import copy
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmpretrain.models import SimCLR as MMPretrainSimCLR
from mmpretrain.models.utils import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample

from mmsimclr.models import SimCLR
from mmsimclr.registry import MODELS
from tools.benchmark.common import mmpretrain_simclr_loss

MMPRETRAIN_CFG = osp.join(osp.dirname(__import__('mmpretrain').__file__), '.mim', 'configs', 'simclr',
                          'simclr_resnet50_16xb256-coslr-200e_in1k.py')


@pytest.fixture(scope='module')
def both_models(repo_root):
    from mmengine.registry import init_default_scope
    ref_cfg = Config.fromfile(MMPRETRAIN_CFG).model
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    ref = revert_sync_batchnorm(MMPRETRAIN_MODELS.build(ref_cfg))  # SyncBN -> BN in one process
    init_default_scope('mmsimclr')
    ours_cfg = Config.fromfile(osp.join(repo_root, 'configs', 'simclr_r50_16xb256-coslr-200e_in1k.py')).model
    torch.manual_seed(1)
    ours = MODELS.build(ours_cfg)
    ours.init_weights()
    assert isinstance(ref, MMPretrainSimCLR) and isinstance(ours, SimCLR)
    return ref, ours


def test_state_dicts_load_both_ways_strictly(both_models):
    ref, ours = both_models
    assert list(ref.state_dict()) == list(ours.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.load_state_dict(ours.state_dict(), strict=True)


def test_same_loss_and_features(both_models):
    ref, ours = both_models
    ours.load_state_dict(ref.state_dict(), strict=True)
    torch.manual_seed(2)
    views = [torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64)]
    ref.train(), ours.train()
    with torch.no_grad():
        ref_loss = ref.loss([v.clone() for v in views], None)['loss']
        our_loss = ours.loss([v.clone() for v in views], None)['loss']
    assert abs(our_loss.item() - ref_loss.item()) / abs(ref_loss.item()) <= 1e-5

    ref.eval(), ours.eval()
    with torch.no_grad():
        ref_feat = ref(views[0], mode='tensor')
        our_feat = ours(views[0], mode='tensor')
    assert torch.allclose(our_feat[-1], ref_feat[-1], rtol=1e-5, atol=1e-6)


def test_predict_mode_returns_embeddings(both_models):
    _, ours = both_models
    ours.eval()
    with torch.no_grad():
        samples = ours(torch.randn(3, 3, 64, 64), mode='predict')
    assert len(samples) == 3
    assert samples[0].feat.shape == (2048, ) and samples[0].proj.shape == (128, )
    with pytest.raises(RuntimeError, match='Invalid mode|invalid mode'):
        ours(torch.randn(1, 3, 64, 64), mode='bogus')


def test_loss_needs_two_views(both_models):
    _, ours = both_models
    with pytest.raises(ValueError, match='two augmented views'):
        ours.loss([torch.randn(2, 3, 32, 32)], None)


def test_mmpretrain_config_spelling_of_the_loss_is_accepted():
    head = MODELS.build(dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'), temperature=0.2))
    assert head.multiview_loss.temperature == 0.2
    torch.manual_seed(3)
    z = torch.randn(8, 16)  # sample-major: views z[0::2], z[1::2]
    expected = mmpretrain_simclr_loss(0.2)([z[0::2], z[1::2]])
    torch.testing.assert_close(head.loss(z, num_views=2), expected, rtol=1e-5, atol=0)


# A narrow ResNet-18 SimCLR written as mmpretrain's unit test writes it: unprefixed names, mmpretrain's loss spelling.
TINY_BACKBONE = dict(type='ResNet', depth=18, stem_channels=8, base_channels=8, norm_cfg=dict(type='BN'))
TINY_NECK = dict(type='NonLinearNeck', in_channels=64, hid_channels=16, out_channels=8, num_layers=2,
                 with_avg_pool=True, norm_cfg=dict(type='BN1d'))
TINY_HEAD = dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'), temperature=0.1)
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def tiny_kwargs(**overrides):
    kwargs = dict(backbone=TINY_BACKBONE, neck=TINY_NECK, head=TINY_HEAD,
                  data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True))
    kwargs.update(overrides)
    return copy.deepcopy(kwargs)


@pytest.fixture(params=[None, 'mmpretrain', 'mmsimclr'], ids=['no-scope', 'mmpretrain-scope', 'mmsimclr-scope'])
def default_scope(request, monkeypatch):
    """The default scope for one test (``None``: none at all); the session's scopes come back afterwards."""
    monkeypatch.setattr(DefaultScope, '_instance_dict', OrderedDict())
    if request.param is not None:
        DefaultScope.get_instance(f'test-simclr-{request.param}', scope_name=request.param)
    return request.param


def views(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8) for _ in range(2)]


def test_parts_are_ours_whatever_the_default_scope(default_scope):
    """mmpretrain's way of building (the class called with unprefixed part names) and a registry build by the
    prefixed name both give mmsimclr's neck and head, and the loss is mmpretrain SimCLR's for the same weights."""
    from mmsimclr.models.heads import ContrastiveHead
    from mmsimclr.models.necks import NonLinearNeck
    direct = SimCLR(**tiny_kwargs())
    by_name = MMPRETRAIN_MODELS.build(dict(type='mmsimclr.SimCLR', **tiny_kwargs()))
    for model in (direct, by_name):
        assert type(model) is SimCLR
        assert type(model.neck) is NonLinearNeck and type(model.head) is ContrastiveHead
        assert type(model.data_preprocessor) is SelfSupDataPreprocessor  # mmpretrain's default type

    ref = MMPretrainSimCLR(**tiny_kwargs(neck=dict(TINY_NECK, type='mmpretrain.NonLinearNeck'),
                                         head=dict(TINY_HEAD, type='mmpretrain.ContrastiveHead')))
    direct.load_state_dict(ref.state_dict(), strict=True)
    data = dict(inputs=views(), data_samples=[DataSample() for _ in range(4)])
    got = direct(**direct.data_preprocessor(copy.deepcopy(data), True), mode='loss')['loss']
    expected = ref(**ref.data_preprocessor(copy.deepcopy(data), True), mode='loss')['loss']
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_same_initial_weights_as_mmpretrain_for_a_seed():
    """Parts are built in mmpretrain's order, so a seed gives mmpretrain SimCLR's initial weights."""
    torch.manual_seed(5)
    ours = SimCLR(**tiny_kwargs())
    torch.manual_seed(5)
    ref = MMPretrainSimCLR(**tiny_kwargs(neck=dict(TINY_NECK, type='mmpretrain.NonLinearNeck'),
                                         head=dict(TINY_HEAD, type='mmpretrain.ContrastiveHead')))
    ref_state = ref.state_dict()
    assert list(ours.state_dict()) == list(ref_state)
    for key, value in ours.state_dict().items():
        assert torch.equal(value, ref_state[key]), key


def test_explicit_scopes_are_honoured():
    neck = SimCLR(**tiny_kwargs(neck=dict(TINY_NECK, type='mmpretrain.NonLinearNeck'))).neck
    assert type(neck) is MMPRETRAIN_MODELS.get('NonLinearNeck')
    with pytest.raises(TypeError, match="mmpretrain's ContrastiveHead.*mmsimclr.ContrastiveHead"):
        SimCLR(**tiny_kwargs(head=dict(TINY_HEAD, type='mmpretrain.ContrastiveHead')))


def test_data_preprocessor_path():
    """The SelfSupDataPreprocessor path: each view BGR -> RGB, then (x - mean) / std, as float; views stay a list."""
    model = SimCLR(**tiny_kwargs())
    raw = views(n=3, size=16, seed=4)
    out = model.data_preprocessor(dict(inputs=[v.clone() for v in raw], data_samples=None), True)
    assert isinstance(out['inputs'], list) and len(out['inputs']) == 2
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    for got, view in zip(out['inputs'], raw):
        expected = (view.flip(1).float() - mean) / std
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-5)
    # a single batch (the val/test path) stays one tensor, normalised the same way, and feeds 'predict'
    single = model.data_preprocessor(dict(inputs=raw[0].clone(), data_samples=None), False)['inputs']
    assert torch.is_tensor(single)
    torch.testing.assert_close(single, (raw[0].flip(1).float() - mean) / std, rtol=1e-6, atol=1e-5)
    assert len(model.eval()(single, mode='predict')) == 3
    model.train()
    # train_step runs the preprocessor, the loss, and one optimizer step
    from mmengine.optim import OptimWrapper
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = model.backbone.conv1.weight.detach().clone()
    log = model.train_step(dict(inputs=[v.clone() for v in raw], data_samples=None), wrapper)
    assert torch.isfinite(log['loss']) and not torch.equal(model.backbone.conv1.weight, before)


def test_forward_modes_on_a_tiny_network():
    model = SimCLR(**tiny_kwargs()).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model(x, mode='tensor')
        assert isinstance(feats, tuple) and feats[-1].shape == (2, 64, 1, 1)
        assert torch.equal(model([x, x.flip(0)], mode='tensor')[-1], feats[-1])  # a list of views: the first
        samples = model(x, mode='predict')
        assert [s.feat.shape for s in samples] == [(64, ), (64, )]
        assert [s.proj.shape for s in samples] == [(8, ), (8, )]
        torch.testing.assert_close(torch.stack([s.feat for s in samples]), feats[-1].flatten(1))
        torch.testing.assert_close(torch.stack([s.proj for s in samples]), model.neck((feats[-1], ))[0])
    model.train()
    loss = model([x, x + 0.1 * torch.randn_like(x)], mode='loss')
    assert set(loss) == {'loss'} and loss['loss'].ndim == 0 and torch.isfinite(loss['loss'])
