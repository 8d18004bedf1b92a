"""SimCLRv2's ResNets (ResNetSK), selective-kernel convolution, ResNet-D shortcuts and projection head, against
google-research/simclr (TF1 ``resnet.py`` / ``model_util.py``) and its README's table of the 13 published models."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models.backbones import ResNet
from torch import nn

from mmsimclr.models.backbones import ResNetDShortcutPool, ResNetSK, ResNetTFStem, SelectiveKernelConv2d
from mmsimclr.models.backbones.simclrv2_arch import SIMCLRV2_ARCHS, SIMCLRV2_ARCHS_BY_NAME, SK_RATIO
from mmsimclr.models.necks import SimCLRv2Neck
from mmsimclr.registry import MODELS


def _randomise_(module, seed=0):
    """Every weight, bias and BN statistic random (running_var > 0), so that no entry can match by accident."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith('num_batches_tracked'):
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.3)
    return module


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


# (a) parameter counts -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('arch', SIMCLRV2_ARCHS, ids=lambda a: a.name)
def test_param_count_matches_readme(arch):
    """The README's "Param (M)" counts the backbone alone, rounded to whole millions: each of the 13 is within 1% or
    0.5M (the rounding: R50 1x is 23.51M, published 24) of it. Built on ``meta``: the 795M model costs no memory."""
    with torch.device('meta'):
        model = MODELS.build(arch.backbone_cfg())
    assert all(p.is_meta for p in model.parameters())
    n = _n_params(model) / 1e6
    assert abs(n - arch.params_m) <= max(0.01 * arch.params_m, 0.5), (arch.name, n, arch.params_m)
    assert model.feat_dim == arch.feat_dim


def test_param_column_is_backbone_only():
    """R50 1x: backbone 23.5M -> 24 as published; with a 1000-way classifier (25.6M) or with the 3-layer projection
    head (32.2M) it would not round to 24."""
    arch = SIMCLRV2_ARCHS_BY_NAME['r50_1x_sk0']
    with torch.device('meta'):
        backbone = MODELS.build(arch.backbone_cfg())
        head = SimCLRv2Neck(in_channels=arch.feat_dim, norm_cfg=dict(type='BN1d'))
    n = _n_params(backbone)
    assert n == 23_508_032 and round(n / 1e6) == arch.params_m
    assert round((n + 2048 * 1000 + 1000) / 1e6) != arch.params_m
    assert round((n + _n_params(head)) / 1e6) != arch.params_m
    assert _n_params(head) == 2 * 2048 * 2048 + 2048 * 128 + 2 * (2 * 2048) + 128  # no dense bias, no last beta


def test_sk_attention_widths():
    """M = max(int(C * 0.0625), 32) per stage (C = 64w, 128w, 256w, 512w): 32 at 1x; 32, 32, 32, 64 at 2x;
    32, 32, 48, 96 at 3x."""
    with torch.device('meta'):
        model = ResNetSK(depth=152, width_multiplier=3, sk_ratio=SK_RATIO)
    mids = [getattr(model, f'layer{i}')[0].conv2.fc1.out_channels for i in (1, 2, 3, 4)]
    assert mids == [32, 32, 48, 96]
    with torch.device('meta'):
        model = ResNetSK(depth=50, width_multiplier=2, sk_ratio=SK_RATIO)
    assert [getattr(model, f'layer{i}')[0].conv2.fc1.out_channels for i in (1, 2, 3, 4)] == [32, 32, 32, 64]


# (b) structure and forward shapes ------------------------------------------------------------------------------

@pytest.mark.parametrize('width', [1, 2])
def test_stem_widths(width):
    """TF: SK stem = 3x3/2 (32w), 3x3 (32w), 3x3 (64w), each BN + ReLU; plain stem 7x7/2 (64w); SAME max pool."""
    with torch.device('meta'):
        sk = ResNetSK(depth=50, width_multiplier=width, sk_ratio=SK_RATIO)
        plain = ResNetSK(depth=50, width_multiplier=width, sk_ratio=0)
    w = 64 * width
    assert [tuple(sk.stem[i].conv.weight.shape) for i in range(3)] == [(w // 2, 3, 3, 3), (w // 2, w // 2, 3, 3),
                                                                        (w, w // 2, 3, 3)]
    assert [sk.stem[i].conv.stride for i in range(3)] == [(2, 2), (1, 1), (1, 1)]
    assert all(sk.stem[i].with_norm and sk.stem[i].with_activation for i in range(3))
    assert tuple(plain.conv1.weight.shape) == (w, 3, 7, 7) and not hasattr(plain, 'stem')
    assert type(sk.maxpool).__name__ == type(plain.maxpool).__name__ == 'TFSameMaxPool2d'
    for model in (sk, plain):
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert bns and all(m.eps == 1e-5 and m.momentum == 0.1 for m in bns)  # TF eps 1e-5, decay 0.9


@pytest.mark.parametrize('sk_ratio', [0.0, SK_RATIO], ids=['sk0', 'sk1'])
def test_forward_shapes(sk_ratio):
    torch.manual_seed(0)
    model = ResNetSK(depth=50, width_multiplier=1, sk_ratio=sk_ratio, out_indices=(0, 1, 2, 3))
    model.init_weights()
    model.train()
    outs = model(torch.randn(2, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(2, 256, 8, 8), (2, 512, 4, 4), (2, 1024, 2, 2), (2, 2048, 1, 1)]
    assert model.feat_dim == 2048
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 35, 35))[-1]  # odd sizes round up, as TF's paddings do
    assert tuple(out.shape) == (1, 2048, 2, 2) and torch.isfinite(out).all()


def test_sk0_is_resnet_tf_stem():
    """sk_ratio=0 is the v1 TF ResNet (ResNetTFStem): same keys, shapes and outputs."""
    ours = _randomise_(ResNetSK(depth=50, width_multiplier=1, sk_ratio=0, out_indices=(3, )))
    ref = ResNetTFStem(depth=50, stem_channels=64, base_channels=64, out_indices=(3, ))
    ours.eval()  # mmpretrain's ResNet.train() returns None
    ref.eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], ref(x)[0])


@pytest.mark.parametrize('sk_ratio', [0.0, SK_RATIO], ids=['sk0', 'sk1'])
def test_tf_creation_order(sk_ratio):
    """Every conv / BN exactly once, in TF's creation order: stem, then per block shortcut, conv1, 3x3 (SK), conv3;
    consecutive convolutions chain channel counts within a block."""
    with torch.device('meta'):
        model = ResNetSK(depth=50, width_multiplier=1, sk_ratio=sk_ratio)
    convs, bns = model.tf_creation_order()
    modules = dict(model.named_modules())
    assert set(convs) == {n for n, m in modules.items() if isinstance(m, nn.Conv2d)}
    assert set(bns) == {n for n, m in modules.items() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    assert len(set(convs)) == len(convs) and len(set(bns)) == len(bns)
    assert (len(convs), len(bns)) == ((87, 71) if sk_ratio else (53, 53))
    first = 'stem.0.conv' if sk_ratio else 'conv1'
    shortcut = 'layer1.0.downsample.1' if sk_ratio else 'layer1.0.downsample.0'
    assert convs[:4 if sk_ratio else 2] == ([first, 'stem.1.conv', 'stem.2.conv', shortcut] if sk_ratio
                                            else [first, shortcut])
    if sk_ratio:
        assert convs[4:9] == ['layer1.0.conv1', 'layer1.0.conv2.conv', 'layer1.0.conv2.fc1', 'layer1.0.conv2.fc2',
                              'layer1.0.conv3']
        assert bns[3:8] == ['layer1.0.downsample.2', 'layer1.0.bn1', 'layer1.0.conv2.bn', 'layer1.0.conv2.fc1_bn',
                            'layer1.0.bn3']


# (c) selective-kernel semantics --------------------------------------------------------------------------------

def _bn(x, bn):
    shape = (1, -1, 1, 1)
    return ((x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps) * bn.weight.view(shape)
            + bn.bias.view(shape))


@pytest.mark.parametrize('stride,size', [(1, 6), (2, 5)])
def test_sk_conv_formula(stride, size):
    """TF sk_conv2d: one 3x3 conv to 2C split in halves, BN+ReLU; mean over space of the sum; 1x1 to M, BN+ReLU;
    1x1 to 2C split in halves; softmax over the two; weighted sum. Written out by hand."""
    cin, c = 3, 4
    sk = _randomise_(SelectiveKernelConv2d(cin, c, stride=stride, sk_ratio=0.0625, min_channels=2), seed=1)
    sk = sk.double().eval()
    assert sk.mid_channels == 2 and tuple(sk.conv.weight.shape) == (2 * c, cin, 3, 3)
    x = torch.randn(2, cin, size, size, dtype=torch.float64)
    with torch.no_grad():
        y = sk(x)
        u = torch.relu(_bn(F.conv2d(F.pad(x, (1, 1, 1, 1)), sk.conv.weight, stride=stride), sk.bn))
        u0, u1 = u[:, :c], u[:, c:]
        s = (u0 + u1).mean(dim=(2, 3))                                  # (N, C)
        z = torch.relu(_bn((s @ sk.fc1.weight[:, :, 0, 0].T)[..., None, None], sk.fc1_bn))[..., 0, 0]
        a = z @ sk.fc2.weight[:, :, 0, 0].T                              # (N, 2C)
        a0, a1 = a[:, :c, None, None], a[:, c:, None, None]
        w0 = torch.exp(a0) / (torch.exp(a0) + torch.exp(a1))
        expected = w0 * u0 + (1 - w0) * u1
    assert y.shape == (2, c, -(-size // stride), -(-size // stride))
    torch.testing.assert_close(y, expected)


def test_sk_block_has_no_bn_after_mixing():
    with torch.device('meta'):
        block = ResNetSK(depth=50, sk_ratio=SK_RATIO).layer2[0]
    assert isinstance(block.conv2, SelectiveKernelConv2d) and block.norm2 is None and not hasattr(block, 'bn2')
    assert block.conv2.stride == 2 and block.conv1.stride == (1, 1)  # stride in the 3x3, as TF


# (d) ResNet-D shortcut -------------------------------------------------------------------------------------------

def test_shortcut_pool_padding():
    """stride 2: zero pad 0/1 then 2x2 VALID mean (the pad counts on odd sides); stride 1: 2x2 SAME mean over the
    window clipped to the map (TF leaves the pad out)."""
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    xp = F.pad(x, (0, 1, 0, 1))
    expected2 = torch.stack([torch.stack([xp[..., 2 * i:2 * i + 2, 2 * j:2 * j + 2].sum((-2, -1)) / 4
                                          for j in range(3)], -1) for i in range(3)], -2)
    torch.testing.assert_close(ResNetDShortcutPool(2)(x), expected2)
    expected1 = torch.stack([torch.stack([x[..., i:i + 2, j:j + 2].mean((-2, -1)) for j in range(5)], -1)
                             for i in range(5)], -2)
    torch.testing.assert_close(ResNetDShortcutPool(1)(x), expected1)
    even = torch.randn(1, 2, 6, 6)
    torch.testing.assert_close(ResNetDShortcutPool(2)(even), F.avg_pool2d(even, 2))


@pytest.mark.parametrize('stage,stride', [(1, 1), (2, 2)])
def test_resnet_d_shortcut(stage, stride):
    """SK model: every first block's shortcut is pool -> 1x1 conv (stride 1) -> BN; with the residual branch zeroed
    the block outputs ReLU(BN(conv1x1(pool(x)))). The plain model keeps the strided 1x1 conv and no pool."""
    with torch.device('meta'):
        model = ResNetSK(depth=50, sk_ratio=SK_RATIO)
    block = getattr(model, f'layer{stage}')[0].to_empty(device='cpu')  # only this block gets memory
    _randomise_(block).double().eval()
    pool, conv, bn = block.downsample
    assert isinstance(pool, ResNetDShortcutPool) and pool.stride == stride
    assert conv.kernel_size == (1, 1) and conv.stride == (1, 1)
    with torch.no_grad():
        block.bn3.weight.zero_()
        block.bn3.bias.zero_()
        x = torch.randn(2, block.in_channels, 6, 6, dtype=torch.float64)
        expected = torch.relu(_bn(F.conv2d(pool(x), conv.weight), bn))
        torch.testing.assert_close(block(x), expected)
    with torch.device('meta'):
        plain = ResNetSK(depth=50, sk_ratio=0)
    down = getattr(plain, f'layer{stage}')[0].downsample
    assert len(down) == 2 and down[0].stride == (stride, stride) and not isinstance(down[0], ResNetDShortcutPool)


# projection head -----------------------------------------------------------------------------------------------

def test_projection_head_layout_and_selector():
    """TF projection_head (nonlinear, 3 layers): dense without bias + BN (+ ReLU) x2, then dense + BN with gamma but
    no beta, no ReLU; out_layer=1 (ft_proj_selector) returns the first layer's ReLU output."""
    head = _randomise_(SimCLRv2Neck(in_channels=16, out_channels=8, norm_cfg=dict(type='BN1d')), seed=2).eval()
    assert {k: tuple(v.shape) for k, v in head.named_parameters()} == {
        'fc0.weight': (16, 16), 'bn0.weight': (16, ), 'bn0.bias': (16, ), 'fc1.weight': (16, 16),
        'bn1.weight': (16, ), 'bn1.bias': (16, ), 'fc2.weight': (8, 16), 'bn2.weight': (8, )}
    h = torch.randn(4, 16, 2, 2)
    pooled = h.mean((2, 3))

    def bn1d(x, bn):
        y = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight
        return y if bn.bias is None else y + bn.bias

    with torch.no_grad():
        l1 = torch.relu(bn1d(pooled @ head.fc0.weight.T, head.bn0))
        l2 = torch.relu(bn1d(l1 @ head.fc1.weight.T, head.bn1))
        l3 = bn1d(l2 @ head.fc2.weight.T, head.bn2)
        torch.testing.assert_close(head((h, ))[0], l3)
        head.out_layer = 1
        torch.testing.assert_close(head((h, ))[0], l1)
    assert SimCLRv2Neck(in_channels=16, out_layer=1, norm_cfg=dict(type='BN1d')).out_layer == 1
    head = SimCLRv2Neck(in_channels=16, norm_cfg=dict(type='BN1d'))
    head.init_weights()
    assert head.bn2.bias is None and torch.all(head.bn2.weight == 1)


def test_arch_table():
    assert len(SIMCLRV2_ARCHS) == 13 and len(SIMCLRV2_ARCHS_BY_NAME) == 13
    a = SIMCLRV2_ARCHS_BY_NAME['r152_3x_sk1']
    assert (a.params_m, a.ft_1pct, a.ft_10pct, a.ft_100pct, a.linear_eval, a.supervised) == (
        795, 74.9, 80.1, 83.1, 79.8, 80.5)
    assert a.backbone_cfg(out_indices=(3, )) == dict(type='ResNetSK', depth=152, width_multiplier=3, sk_ratio=0.0625,
                                                     out_indices=(3, ))
    assert issubclass(ResNetSK, ResNet)
