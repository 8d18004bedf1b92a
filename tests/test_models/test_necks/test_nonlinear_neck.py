"""NonLinearNeck against mmpretrain's (the oracle) for every argument set: same state-dict keys and shapes, same
outputs and BN statistics for the same weights, in train and eval mode."""
import itertools
import warnings

import pytest
import torch
from mmpretrain.models.necks import NonLinearNeck as MMPretrainNeck

from mmsimclr.models.necks import NonLinearNeck
from mmsimclr.models.utils import GlobalBatchNorm
from mmsimclr.registry import MODELS

IN, HID, OUT = 16, 12, 8
FLAGS = ('with_bias', 'with_last_bn', 'with_last_bn_affine', 'with_last_bias', 'with_avg_pool')
ARG_SETS = [dict(num_layers=n, **dict(zip(FLAGS, values)))
            for n in (1, 2, 3) for values in itertools.product((False, True), repeat=len(FLAGS))]


def _ids(kwargs):
    return '-'.join(f'{k}={int(v)}' for k, v in kwargs.items())


def _randomised(state_dict, seed):
    """Every weight, bias and BN statistic random (running_var > 0), so that no entry can match by accident."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state_dict.items():
        if key.endswith('num_batches_tracked'):
            out[key] = torch.tensor(3)
        elif key.endswith('running_var'):
            out[key] = torch.rand(value.shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(value.shape, generator=g)
    return out


def _pair(kwargs, norm_cfg=dict(type='BN1d')):
    args = dict(in_channels=IN, hid_channels=HID, out_channels=OUT, norm_cfg=norm_cfg, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # num_layers=1 with out_channels != hid_channels warns (tested below)
        ours = NonLinearNeck(**args)
    return MMPretrainNeck(**args), ours


@pytest.mark.parametrize('kwargs', ARG_SETS, ids=_ids)
def test_same_layout_and_outputs_as_mmpretrain(kwargs):
    ref, ours = _pair(kwargs)
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert [(k, v.shape) for k, v in our_sd.items()] == [(k, v.shape) for k, v in ref_sd.items()]

    weights = _randomised(ref_sd, seed=len(ref_sd))
    ref.load_state_dict(weights, strict=True)
    ours.load_state_dict(weights, strict=True)
    torch.manual_seed(0)
    x = torch.randn(6, IN, 3, 3) if kwargs['with_avg_pool'] else torch.randn(6, IN)
    out_dim = OUT if kwargs['num_layers'] > 1 else HID
    for train in (True, False):
        ref.train(train), ours.train(train)
        expected, got = ref((x.clone(), ))[0], ours((x.clone(), ))[0]
        assert got.shape == expected.shape == (6, out_dim)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the train-mode pass moved the BN statistics identically
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('num_layers', [1, 2, 3])
def test_default_norm_is_global_bn_with_mmpretrain_syncbn_keys(num_layers):
    """Our default ``GlobalBN`` and mmpretrain's default ``SyncBN`` have the same state dict; a checkpoint made
    with mmpretrain's defaults loads strictly and gives the same eval output."""
    args = dict(in_channels=IN, hid_channels=HID, out_channels=HID, num_layers=num_layers)
    ref, ours = MMPretrainNeck(**args), NonLinearNeck(**args)
    assert all(isinstance(getattr(ours, f'bn{i}'), GlobalBatchNorm) for i in range(num_layers))
    assert isinstance(ref.bn0, torch.nn.SyncBatchNorm)
    weights = _randomised(ref.state_dict(), seed=num_layers)
    assert list(ours.state_dict()) == list(weights)
    ours.load_state_dict(weights, strict=True)
    ref.load_state_dict(weights, strict=True)
    ours.eval(), ref.eval()
    x = torch.randn(4, IN, 2, 2)
    torch.testing.assert_close(ours((x, ))[0], ref((x, ))[0], rtol=1e-5, atol=1e-6)


def test_num_layers_1_warns_that_out_channels_is_unused():
    with pytest.warns(UserWarning, match='out_channels=8 is not used'):
        neck = NonLinearNeck(in_channels=IN, hid_channels=HID, out_channels=8, num_layers=1)
    assert neck((torch.randn(3, IN), ))[0].shape == (3, HID)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        NonLinearNeck(in_channels=IN, hid_channels=HID, out_channels=HID, num_layers=1)


def test_builds_by_name_in_the_mmsimclr_scope():
    neck = MODELS.build(dict(type='NonLinearNeck', in_channels=IN, hid_channels=HID, out_channels=OUT))
    assert type(neck) is NonLinearNeck


@pytest.mark.parametrize('num_layers', [0, -1, 2.0])
def test_bad_num_layers_is_refused(num_layers):
    with pytest.raises(ValueError, match='num_layers must be an int >= 1'):
        NonLinearNeck(in_channels=IN, hid_channels=HID, out_channels=OUT, num_layers=num_layers)


def test_two_tensor_input_is_refused():
    neck = NonLinearNeck(in_channels=IN, hid_channels=HID, out_channels=OUT)
    with pytest.raises(ValueError, match='out_indices'):
        neck((torch.randn(2, IN), torch.randn(2, IN)))


def test_wrong_in_channels_names_the_key():
    neck = NonLinearNeck(in_channels=2048, hid_channels=8, out_channels=4)
    with pytest.raises(ValueError, match='in_channels'):
        neck((torch.randn(2, 512, 1, 1), ))
