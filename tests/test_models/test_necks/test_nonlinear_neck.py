"""NonLinearNeck: same keys and outputs as mmpretrain's for every structural option."""
import pytest
import torch
from mmpretrain.models.necks import NonLinearNeck as MMPretrainNeck

from mmsimclr.models.necks import NonLinearNeck


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(num_layers=3),
    dict(with_bias=True, with_last_bias=True),
    dict(with_last_bn=False),
    dict(with_last_bn_affine=False),
    dict(with_avg_pool=False),
])
def test_matches_mmpretrain(kwargs):
    args = dict(in_channels=16, hid_channels=12, out_channels=8, **kwargs)
    torch.manual_seed(0)
    ref = MMPretrainNeck(norm_cfg=dict(type='BN1d'), **args)
    ours = NonLinearNeck(norm_cfg=dict(type='BN1d'), **args)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(6, 16, 3, 3) if args.get('with_avg_pool', True) else torch.randn(6, 16)
    ref.train(), ours.train()
    assert torch.allclose(ours((x, ))[0], ref((x, ))[0], atol=1e-6)


def test_wrong_in_channels_names_the_key():
    neck = NonLinearNeck(in_channels=2048, hid_channels=8, out_channels=4)
    with pytest.raises(ValueError, match='in_channels'):
        neck((torch.randn(2, 512, 1, 1), ))
