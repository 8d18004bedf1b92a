"""SimCLR against mmpretrain's: same state-dict layout, same loss, same features."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmpretrain.models import SimCLR as MMPretrainSimCLR
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from mmsimclr.models import SimCLR
from mmsimclr.registry import MODELS

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
    assert head.loss_module.temperature == 0.2
    z = torch.randn(8, 16)
    assert torch.isfinite(head.loss(z, num_views=2))
