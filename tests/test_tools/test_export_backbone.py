"""tools/model_converters/export_backbone.py: the exported backbone computes what mmsimclr/mmpretrain compute.

Oracles: mmsimclr's SimCLR ``embed()['feat']`` (pooled backbone features), mmpretrain's ImageClassifier logits,
and mmpretrain's ``ResNet(init_cfg=Pretrained)`` loading; the consumer side is stock torchvision. Every weight and
batch-norm running statistic is randomised, so a dropped, mis-named or mis-placed tensor changes the numbers.
"""
import json
import os.path as osp

import pytest
import torch
import torchvision
from mmengine.config import Config

from mmsimclr.registry import MODELS
from tools.model_converters.export_backbone import ExportError, main as export

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SIMCLR_R50 = osp.join(ROOT, 'configs', '_base_', 'models', 'simclr_r50.py')
LINEAR_R50 = osp.join(ROOT, 'configs', '_base_', 'models', 'resnet50_linear.py')
LEGACY = osp.join(ROOT, 'tests', 'data', 'legacy_checkpoints')


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Random weights and BN running statistics (not the constructor's ones/zeros), scaled so that activations
    stay O(1) through 50 layers in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith('running_mean') or name.endswith('bias'):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.dim() == 1:  # BN gamma
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5)
            else:  # conv / linear weight, He-like scale
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (1.0 / fan_in) ** 0.5)


def save_checkpoint(model, cfg, path):
    """As mmengine's runner saves it: state_dict plus the config text in meta."""
    torch.save({'state_dict': model.state_dict(), 'meta': {'cfg': cfg.pretty_text, 'epoch': 1}}, str(path))


def simclr_cfg(depth=50, **backbone):
    cfg = Config.fromfile(SIMCLR_R50)
    cfg.model.backbone.update(depth=depth, **backbone)
    if depth in (18, 34):
        cfg.model.neck.update(in_channels=512, hid_channels=512)
    return cfg


@pytest.fixture(scope='module')
def simclr_r50(tmp_path_factory):
    """A randomly initialised SimCLR ResNet-50 (configs/_base_/models/simclr_r50.py) and its checkpoint."""
    cfg = simclr_cfg()
    model = MODELS.build(cfg.model)
    randomise(model, seed=0)
    path = tmp_path_factory.mktemp('simclr') / 'epoch_1.pth'
    save_checkpoint(model, cfg, path)
    return model.eval(), str(path)


@pytest.fixture(scope='module')
def images():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_torchvision_features_equal_simclr(simclr_r50, images, tmp_path, capsys):
    model, ckpt = simclr_r50
    out = str(tmp_path / 'r50_tv.pth')
    summary = export([ckpt, out, '--format', 'torchvision'])
    assert (summary['arch'], summary['num_classes']) == ('resnet50', None)
    assert 'm.fc = torch.nn.Identity()' in capsys.readouterr().out

    sd = torch.load(out, weights_only=True)  # plain torch can read it, nothing but tensors
    assert not any(k.startswith('fc.') for k in sd)
    tv = torchvision.models.resnet50()
    result = tv.load_state_dict(sd, strict=False)  # stock model: exactly the classifier is missing
    assert (sorted(result.missing_keys), result.unexpected_keys) == (['fc.bias', 'fc.weight'], [])
    tv.fc = torch.nn.Identity()
    tv.load_state_dict(sd, strict=True)  # with fc = Identity the state dict is complete
    tv.eval()
    with torch.no_grad():
        expected = model.embed(images)['feat']
        got = tv(images)
    assert got.shape == expected.shape == (2, 2048)
    assert expected.abs().mean() > 1e-2  # the comparison is not between two near-zero vectors
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_torchvision_logits_equal_linear_classifier(simclr_r50, images, tmp_path):
    simclr, _ = simclr_r50
    cfg = Config.fromfile(LINEAR_R50)
    cfg.model.backbone.init_cfg = None
    cfg.model.head.num_classes = 7
    classifier = MODELS.build(cfg.model)
    from mmpretrain.models import ImageClassifier
    assert isinstance(classifier, ImageClassifier)
    classifier.backbone.load_state_dict(simclr.backbone.state_dict())
    randomise(classifier.head, seed=2)
    ckpt = str(tmp_path / 'linear.pth')
    save_checkpoint(classifier, cfg, ckpt)

    out = str(tmp_path / 'r50_linear_tv.pth')
    summary = export([ckpt, out, '--format', 'torchvision'])
    assert (summary['arch'], summary['num_classes']) == ('resnet50', 7)
    tv = torchvision.models.resnet50(num_classes=7)
    tv.load_state_dict(torch.load(out, weights_only=True), strict=True)
    classifier.eval()
    tv.eval()
    with torch.no_grad():
        expected = classifier(images, mode='tensor')
        got = tv(images)
    assert got.shape == (2, 7)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_mmpretrain_export_loads_as_pretrained(simclr_r50, tmp_path):
    model, ckpt = simclr_r50
    out = str(tmp_path / 'r50_backbone.pth')
    export([ckpt, out])  # --format mmpretrain is the default
    saved = torch.load(out, weights_only=True)
    assert set(saved) == {'state_dict', 'meta'}
    assert not any(k.startswith(('backbone.', 'neck.')) for k in saved['state_dict'])

    from mmpretrain.models import ResNet
    net = ResNet(depth=50, init_cfg=dict(type='Pretrained', checkpoint=out))
    net.init_weights()
    reference = model.backbone.state_dict()
    loaded = net.state_dict()
    assert set(loaded) == set(reference)
    for key, value in reference.items():
        assert torch.equal(loaded[key], value), key


@pytest.mark.parametrize('style', ['pytorch', 'caffe'])
def test_resnet18_basic_blocks(tmp_path, images, style):
    """BasicBlock ResNets map onto torchvision's too; their style changes nothing (the stride is always in the
    first 3x3 conv), so style='caffe' is accepted for them."""
    cfg = simclr_cfg(depth=18, style=style)
    model = MODELS.build(cfg.model)
    randomise(model, seed=3)
    ckpt = tmp_path / 'r18.pth'
    save_checkpoint(model, cfg, ckpt)
    out = str(tmp_path / 'r18_tv.pth')
    assert export([str(ckpt), out, '--format', 'torchvision'])['arch'] == 'resnet18'
    tv = torchvision.models.resnet18()
    tv.fc = torch.nn.Identity()
    tv.load_state_dict(torch.load(out, weights_only=True))
    model.eval()
    tv.eval()
    with torch.no_grad():
        torch.testing.assert_close(tv(images), model.embed(images)['feat'], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('depth, backbone, message', [  # style='caffe': test_bottleneck_style_caffe_is_refused
    (18, dict(type='ResNetV1c'), 'deep stem'),
    (18, dict(avg_down=True), 'avg_down'),
    (18, dict(type='ResNet_CIFAR'), 'ResNet_CIFAR'),
    (18, dict(base_channels=16, stem_channels=16), 'reduced width'),
    (18, dict(dilations=(1, 1, 1, 2), strides=(1, 2, 2, 1)), 'strides'),
])
def test_torchvision_refuses_what_it_cannot_express(tmp_path, depth, backbone, message):
    cfg = simclr_cfg(depth=depth, **backbone)
    if 'base_channels' in backbone:
        cfg.model.neck.update(in_channels=128, hid_channels=128)
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'odd.pth')
    save_checkpoint(model, cfg, ckpt)
    out = str(tmp_path / 'out.pth')
    with pytest.raises(ExportError, match='use --format mmpretrain') as e:
        export([ckpt, out, '--format', 'torchvision'])
    assert ckpt in str(e.value) and message in str(e.value)
    assert not osp.exists(out)
    export([ckpt, out])  # the mmpretrain format takes any backbone
    assert osp.isfile(out)


def test_bottleneck_style_caffe_is_refused(simclr_r50, tmp_path, capsys):
    """style='caffe' puts a Bottleneck's stride in its first 1x1 conv (ResNet v1), which torchvision (v1.5) cannot
    express, with the same parameter shapes: it is refused from the stored config, or from --config when the
    checkpoint stores none (then the tool says what it assumed)."""
    model, _ = simclr_r50
    caffe = simclr_cfg(style='caffe')
    stored = str(tmp_path / 'caffe.pth')
    save_checkpoint(model, caffe, stored)
    with pytest.raises(ExportError, match="style='caffe'.*use --format mmpretrain") as e:
        export([stored, str(tmp_path / 'out.pth'), '--format', 'torchvision'])
    assert stored in str(e.value) and not osp.exists(tmp_path / 'out.pth')

    bare = str(tmp_path / 'bare.pth')
    torch.save({'state_dict': model.state_dict()}, bare)
    export([bare, str(tmp_path / 'assumed.pth'), '--format', 'torchvision'])
    assert 'assuming mmpretrain\'s defaults (style="pytorch"' in capsys.readouterr().err
    config = tmp_path / 'caffe_config.py'
    caffe.dump(str(config))
    with pytest.raises(ExportError, match="style='caffe'"):
        export([bare, str(tmp_path / 'checked.pth'), '--format', 'torchvision', '--config', str(config)])


def test_not_a_simclr_or_classifier_checkpoint(tmp_path):
    ckpt = str(tmp_path / 'detector.pth')
    torch.save({'state_dict': {'conv1.weight': torch.zeros(4, 3, 3, 3), 'rpn.bias': torch.zeros(4)}}, ckpt)
    for fmt in ('mmpretrain', 'torchvision'):
        with pytest.raises(ExportError, match='no "backbone.\\*" weights') as e:
            export([ckpt, str(tmp_path / 'out.pth'), '--format', fmt])
        assert ckpt in str(e.value)
    assert not osp.exists(tmp_path / 'out.pth')


def test_stored_config_is_read_not_executed(tmp_path, capsys):
    """meta['cfg'] comes from the (untrusted) checkpoint: it is parsed, never run, and custom_imports (mmselfsup in
    published files) are not imported."""
    marker = tmp_path / 'executed'
    text = (f"open({str(marker)!r}, 'w').close()\n"
            "custom_imports = dict(imports=['mmselfsup.models'], allow_failed_imports=False)\n"
            "model = dict(type='SimCLR', backbone=dict(type='ResNet', depth=18, style='caffe'), "
            "data_preprocessor=dict(mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0], to_rgb=True))\n")
    ckpt = str(tmp_path / 'ckpt.pth')
    torch.save({'state_dict': {'backbone.conv1.weight': torch.ones(2, 3, 1, 1)}, 'meta': {'cfg': text}}, ckpt)
    summary = export([ckpt, str(tmp_path / 'out.pth')])
    assert not marker.exists()
    assert summary['normalisation'] == dict(mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0], channel_order='RGB')

    text = "model = dict(backbone=dict(type='ResNet', depth=__import__('os').getpid()))\n"
    torch.save({'state_dict': {'backbone.conv1.weight': torch.ones(2, 3, 1, 1)}, 'meta': {'cfg': text}}, ckpt)
    export([ckpt, str(tmp_path / 'out.pth')])
    assert 'could not read the model config stored in ' + ckpt in capsys.readouterr().err


def test_output_never_replaces_the_input(simclr_r50, tmp_path):
    _, ckpt = simclr_r50
    size = osp.getsize(ckpt)
    with pytest.raises(ExportError, match='is the input checkpoint'):
        export([ckpt, ckpt])
    assert osp.getsize(ckpt) == size
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        export([str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth')])


def _legacy_manifest():
    with open(osp.join(LEGACY, 'manifest.json')) as f:
        return json.load(f)


def _legacy_files():
    """The fixtures' SimCLR/classifier files, from their manifest (empty when absent:
    test_legacy_manifest_lists_the_files then says why)."""
    try:
        files = _legacy_manifest()['files']
    except (OSError, ValueError, KeyError):
        return []
    return sorted(name for name, info in files.items() if 'mmsimclr_model' in info and 'state_dict' in info)


@pytest.mark.checkpoint
def test_legacy_manifest_lists_the_files():
    if not osp.isdir(LEGACY):
        pytest.skip('tests/data/legacy_checkpoints/ (issue 12 fixtures) absent')
    files = _legacy_manifest()['files']
    assert any(info['format'] == 'legacy' for info in files.values())
    for name in files:
        assert osp.isfile(osp.join(LEGACY, name)), name


@pytest.mark.checkpoint
@pytest.mark.skipif(not osp.isdir(LEGACY), reason='tests/data/legacy_checkpoints/ (issue 12 fixtures) absent')
@pytest.mark.parametrize('name', _legacy_files())
def test_legacy_published_fixtures(name, tmp_path):
    """Files written by mmselfsup 1.x / mmcls 1.0.0rc (ResNet-50 layout at reduced width, raw and published):
    the mmpretrain-format export loads into the ResNet their manifest describes, every weight equal to the file's
    (checked against the manifest's per-tensor float64 sums, not through the loader under test); torchvision
    refuses the reduced width with an error naming the file."""
    from mmpretrain.models import ResNet
    path = osp.join(LEGACY, name)
    info = _legacy_manifest()['files'][name]
    expected = {k[len('backbone.'):]: v for k, v in info['state_dict'].items() if k.startswith('backbone.')}
    backbone_cfg = dict(info['mmsimclr_model']['backbone'])
    assert backbone_cfg.pop('type') == 'ResNet'
    backbone_cfg.pop('init_cfg', None)

    out = str(tmp_path / 'backbone.pth')
    assert export([path, out])['num_tensors'] == len(expected)
    net = ResNet(**backbone_cfg, init_cfg=dict(type='Pretrained', checkpoint=out))
    net.init_weights()
    loaded = net.state_dict()
    assert set(loaded) == set(expected)
    for key, ref in expected.items():
        t = loaded[key].to(torch.float64)
        assert list(t.shape) == ref['shape'], key
        assert float(t.sum()) == pytest.approx(ref['sum'], rel=1e-9, abs=1e-9), key
        assert float((t * t).sum()) == pytest.approx(ref['sum_sq'], rel=1e-9, abs=1e-9), key

    with pytest.raises(ExportError, match='reduced width.*use --format mmpretrain') as e:
        export([path, str(tmp_path / 'tv.pth'), '--format', 'torchvision'])
    assert path in str(e.value)
