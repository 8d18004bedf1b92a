"""SimCLRv2's TensorFlow checkpoints: conversion without TensorFlow, checked against TensorFlow's outputs.

The fixture (tests/data/simclrv2_tf, made by its make_fixture.py with TensorFlow 2.21's ``tf.compat.v1.layers``) is
SimCLRv2's selective-kernel ResNet-50 (ResNet-D stem and shortcuts) at width 1/16 with TF-named variables, the
3-layer projection head and a linear head, random weights and BN statistics, a decoy ``ema_model/`` copy, and TF's
features, head-layer outputs and logits (head on the features, and head on nl_0) for even, odd and mixed input
sizes. The classifiers are the configs/simclrv2 ones at the fixture's width (``TinyResNetSK``: ``ResNetSK`` takes
integer width multipliers only).
"""
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmsimclr.apis import extract_features, get_model, get_model_info, inference_model, list_models
from mmsimclr.apis.download import ChecksumError, sha256_of
from mmsimclr.apis.simclr_tf import STAGE_BLOCKS, convert_file, default_output_name, mmpretrain_resnet_layers
from mmsimclr.apis.simclrv2_tf import STEPS, _sk_shapes, checkpoint_url, convert_simclrv2_tf, resnet_sk_layers
from mmsimclr.models.backbones import ResNetSK, ResNetTFStem, SelectiveKernelConv2d
from mmsimclr.models.backbones.simclrv2_arch import SIMCLRV2_ARCHS, SK_RATIO
from mmsimclr.registry import MODELS
from mmsimclr.utils.tf_checkpoint import TFCheckpoint, TFCheckpointError
from tools.model_converters.simclr_tf_to_mmsimclr import main as convert_main
from ..test_apis.conftest import cache, mirrored, server  # noqa: F401 (fixtures)
from .test_simclr_tf_converter import rel_err

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(REPO, 'tests/data/simclrv2_tf')
PREFIX = osp.join(DATA, 'model.ckpt-250228')
V1_PREFIX = osp.join(REPO, 'tests/data/simclr_tf/model.ckpt-7')
CONFIGS = osp.join(REPO, 'configs/simclrv2')
RECIPE = '8xb512-linear-coslr-90e_in1k'
REF = np.load(osp.join(DATA, 'reference.npz'))
SIZES = ('even', 'odd', 'mixed')
TOL = 1e-4


@MODELS.register_module(force=True)
class TinyResNetSK(ResNetSK):
    """ResNetSK with ``stem_channels`` = 64 x width for a fractional width (the fixture's 4 = 64 / 16)."""

    def __init__(self, stem_channels: int, depth: int = 50, sk_ratio: float = SK_RATIO, **kwargs):
        self.width_multiplier, self.sk_ratio, self.sk_min_channels = stem_channels / 64, sk_ratio, 32
        self._sk_deep_stem = sk_ratio > 0
        ResNetTFStem.__init__(self, depth=depth, stem_channels=stem_channels, base_channels=stem_channels,
                              style='pytorch', **kwargs)


def tiny_config(tmp_path, kind='pre') -> str:
    """The R50 1x SK config of ``kind`` ('pre', 'finetune-10pct', ...) at the fixture's width and 10 classes."""
    base = osp.join(CONFIGS, f'resnet50-1x-sk1_simclrv2-{kind}_{RECIPE}.py')
    path = tmp_path / f'tiny-sk1_simclrv2-{kind}.py'
    path.write_text(f"_base_ = ['{base}']\nmodel = dict(data_preprocessor=dict(num_classes=10), backbone=dict("
                    "_delete_=True, type='TinyResNetSK', stem_channels=4, out_indices=(3, ), frozen_stages=4, "
                    "norm_eval=True), neck=dict(in_channels=128), head=dict(num_classes=10, in_channels=128))\n")
    return str(path)


def inputs_of(model, key):
    """The fixture's RGB images through the config's own data preprocessor (BGR 0..255 in, RGB / 255 used)."""
    bgr255 = list(torch.from_numpy(REF[f'img_{key}']).permute(0, 3, 1, 2).flip(1).float())
    return model.data_preprocessor({'inputs': bgr255}, False)['inputs']


@torch.no_grad()
def outputs(model, key) -> dict:
    """Pooled features, every head layer's output and the logits of the classifier, as the TF reference names them."""
    x = inputs_of(model, key)
    feat = model.backbone(x)
    out_layer = model.neck.out_layer
    result = {}
    for layer, name in enumerate(('feat', 'nl0', 'nl1', 'nl2')):
        model.neck.out_layer = layer
        result[name] = model.neck(feat)[0]
    model.neck.out_layer = out_layer
    result['logits'] = model.head.fc(model.extract_feat(x)[-1])
    return result


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('simclrv2_tf') / 'r50_tiny_sk1.pth')
    assert convert_main([PREFIX, path]) == 0
    return path


@pytest.fixture
def pre_model(converted, tmp_path):
    return get_model(tiny_config(tmp_path), pretrained=converted, device='cpu')  # strict=True


def test_reader_sees_the_v2_layout():
    ckpt = TFCheckpoint(PREFIX)
    convs = [n for n in ckpt.names() if n.startswith('base_model/conv2d') and n.endswith('/kernel')]
    assert len(convs) == 87  # ResNet-50 with SK: 3 stem + 4 projections + 16 blocks x 5
    assert ckpt.shape('base_model/conv2d/kernel') == (3, 3, 3, 2)  # ResNet-D stem: 32w / 32w / 64w
    assert ckpt.shape('base_model/conv2d_3/kernel') == (1, 1, 4, 16)  # first block: the projection shortcut first
    assert 'head_contrastive/nl_2/batch_normalization/beta' not in ckpt
    assert ckpt.read('global_step') == 250228 and 'ema_model/base_model/conv2d/kernel' in ckpt


@pytest.mark.parametrize('depth', [50, 101, 152])
@pytest.mark.parametrize('sk', [0, 1])
def test_creation_order_is_resnet_sks(depth, sk):
    """The converter's own list of TF creation order is the backbone's ``tf_creation_order`` for every depth."""
    with torch.device('meta'):
        model = ResNetSK(depth=depth, width_multiplier=2, sk_ratio=SK_RATIO * sk)
    stage_blocks = next(blocks for d, blocks in STAGE_BLOCKS.values() if d == depth)
    assert model.tf_creation_order() == (resnet_sk_layers if sk else mmpretrain_resnet_layers)(stage_blocks)
    if sk:  # every shape the converter checks is the model's (2x: the SK attention is 64 wide in layer4)
        state = {f'backbone.{k}': v for k, v in model.state_dict().items()}
        assert all(tuple(state[k].shape) == s for k, s in _sk_shapes(128, stage_blocks).items())


@pytest.mark.parametrize('key', SIZES)
def test_pretrained_classifier_matches_tensorflow(pre_model, key):
    """Backbone features, the three projection-head layers and the linear-eval logits (head on the features)."""
    out = outputs(pre_model, key)
    for name in ('feat', 'nl0', 'nl1', 'nl2'):
        assert rel_err(out[name], REF[f'{name}_{key}']) < TOL, name
    assert rel_err(out['logits'], REF[f'linear_{key}']) < TOL


@pytest.mark.parametrize('key', SIZES)
def test_finetuned_classifier_matches_tensorflow(converted, tmp_path, key):
    """The 1% / 10% configs put the classifier on nl_0 (``ft_proj_selector=1``): TF's head applied to nl_0."""
    model = get_model(tiny_config(tmp_path, 'finetune-10pct'), pretrained=converted, device='cpu')
    assert model.neck.out_layer == 1
    out = outputs(model, key)
    assert rel_err(out['logits'], REF[f'ft_{key}']) < TOL
    assert rel_err(out['logits'], REF[f'linear_{key}']) > 1e-2  # the two placements are told apart
    feats = extract_features(model, [REF[f'img_{key}'][i][..., ::-1] for i in range(2)], progress=False)
    assert feats['feat'].shape == (2, 128)  # what the classifier sees: nl_0's output (through the eval pipeline)


def _swapped_halves(self, x):
    """SK with the two streams' halves swapped (the attention's halves left as they are)."""
    streams = self.relu(self.bn(self.conv(x)))
    n, _, h, w = streams.shape
    streams = streams.view(n, 2, self.out_channels, h, w).flip(1)
    pooled = streams.sum(dim=1).mean(dim=(2, 3), keepdim=True)
    attention = self.fc2(self.relu(self.fc1_bn(self.fc1(pooled)))).view(n, 2, self.out_channels, 1, 1)
    return (streams * attention.softmax(dim=1)).sum(dim=1)


def test_wrong_sk_split_does_not_match(pre_model, monkeypatch):
    monkeypatch.setattr(SelectiveKernelConv2d, 'forward', _swapped_halves)
    for key in SIZES:
        assert rel_err(outputs(pre_model, key)['feat'], REF[f'feat_{key}']) > 1e-2


def test_plain_shortcut_does_not_match(pre_model):
    """The projection shortcut without ResNet-D's average pool (a strided 1x1 conv, as in ResNet v1)."""
    for name in ('layer1', 'layer2', 'layer3', 'layer4'):
        block = getattr(pre_model.backbone, name)[0]
        stride = block.downsample[0].stride
        block.downsample[0] = torch.nn.Identity()
        block.downsample[1].stride = (stride, stride)
    for key in SIZES:
        assert rel_err(outputs(pre_model, key)['feat'], REF[f'feat_{key}']) > 1e-2


class _EMACopy:
    """The fixture seen as if its ``ema_model/`` copy were complete: ``ema_model/X`` reads ``X`` x 2."""

    def __init__(self, ckpt):
        self.ckpt, self.prefix = ckpt, ckpt.prefix
        base = [n for n in ckpt.names() if n.split('/')[0] in ('base_model', 'head_contrastive')]
        self._names = [n for n in ckpt.names() if not n.startswith('ema_model/')] + ['ema_model/' + n for n in base]

    def names(self):
        return self._names

    def __contains__(self, name):
        return name in self._names

    def _source(self, name):
        return name[len('ema_model/'):] if name.startswith('ema_model/') else name

    def shape(self, name):
        return self.ckpt.shape(self._source(name))

    def read(self, name):
        value = self.ckpt.read(self._source(name))
        return value * 2 if name.startswith('ema_model/') else value


def test_base_model_copy_is_converted_not_ema(converted):
    """The default takes ``base_model/`` (what the TF outputs above used); ``ema_model/`` is left out and named;
    ``ema=True`` takes the ``ema_model/`` copy of backbone and projection head (the fixture's, incomplete, is
    refused)."""
    checkpoint = torch.load(converted, weights_only=True)
    state, meta = checkpoint['state_dict'], checkpoint['meta']
    assert meta['copy'] == 'base_model' and meta['ignored'] == ['ema_model'] and meta['layout'] == 'SimCLRv2'
    assert (meta['depth'], meta['sk_ratio'], meta['stem_channels'], meta['num_classes']) == (50, SK_RATIO, 4, 10)
    assert (meta['proj_layers'], meta['proj_hidden'], meta['proj_dim']) == (3, 128, 128)
    ckpt = TFCheckpoint(PREFIX)
    assert not torch.equal(state['backbone.stem.0.conv.weight'],
                           torch.from_numpy(ckpt.read('ema_model/base_model/conv2d/kernel')).permute(3, 2, 0, 1))
    with pytest.raises(TFCheckpointError, match='3 convolutions .* under ema_model/base_model/'):
        convert_simclrv2_tf(ckpt, ema=True)
    ema_state, ema_arch = convert_simclrv2_tf(_EMACopy(ckpt), ema=True)
    assert ema_state.keys() == state.keys() and ema_arch['copy'] == 'ema_model/base_model'
    for key, value in state.items():
        doubled = key.startswith(('backbone.', 'neck.')) and value.is_floating_point()
        assert torch.equal(ema_state[key], value * 2 if doubled else value), key


def test_hub_folder_index_and_prefix_convert_alike(converted, tmp_path):
    """A TF-Hub module folder (``<model>/hub/variables/variables.*``, the same variable names) converts as the
    checkpoint does; the tool names its output after the model folder."""
    reference = torch.load(converted, weights_only=True)['state_dict']
    hub = tmp_path / 'r50_tiny_sk1' / 'hub'
    (hub / 'variables').mkdir(parents=True)
    for suffix in ('.index', '.data-00000-of-00001'):
        shutil.copy(PREFIX + suffix, hub / 'variables' / f'variables{suffix}')
    assert default_output_name(str(hub)) == 'r50_tiny_sk1_mmsimclr.pth'
    for source in (str(hub), PREFIX + '.index'):
        dst = str(tmp_path / 'out.pth')
        arch = convert_file(source, dst)
        assert arch['layout'] == 'SimCLRv2' and arch['width_multiplier'] == 1 / 16
        state = torch.load(dst, weights_only=True)['state_dict']
        assert state.keys() == reference.keys() and all(torch.equal(state[k], reference[k]) for k in state)


def test_v1_checkpoints_are_told_apart(tmp_path):
    """A SimCLR v1 checkpoint (no SK, no projection head) still converts as v1; the v2 path gives the same."""
    dst = str(tmp_path / 'v1.pth')
    arch = convert_file(V1_PREFIX, dst)
    checkpoint = torch.load(dst, weights_only=True)
    assert checkpoint['meta']['converter'] == 'mmsimclr.apis.simclr_tf' and 'layout' not in arch
    state, v2_arch = convert_simclrv2_tf(TFCheckpoint(V1_PREFIX))
    assert v2_arch['layout'] == 'SimCLR v1' and v2_arch['sk_ratio'] == 0 and v2_arch['proj_layers'] == 0
    assert state.keys() == checkpoint['state_dict'].keys()


def _meta_state_shapes(config: str) -> dict:
    from mmengine.registry import init_default_scope
    from mmsimclr.models.backbones.resnet_sk import _LinspaceOnCPU
    init_default_scope('mmsimclr')
    with torch.device('meta'), _LinspaceOnCPU():
        model = MODELS.build(Config.fromfile(config).model)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_converted_keys_fit_the_training_configs_too():
    """What loads into the zoo classifiers also loads into our SimCLRv2 models: the pretraining one (its projection
    head is the converted ``neck.*``; only the classifier ``head.fc.*`` is extra) and the fine-tuning one (all)."""
    ours = _meta_state_shapes(osp.join(CONFIGS, f'resnet50-1x-sk1_simclrv2-pre_{RECIPE}.py'))
    pretraining = _meta_state_shapes(osp.join(CONFIGS, 'simclrv2_r50-1x-sk1_16xb256-coslr-800e_in1k.py'))
    finetuning = _meta_state_shapes(
        osp.join(CONFIGS, 'resnet50-1x-sk1_simclrv2-800e-pre_8xb128-finetune-1pct-60e_in1k.py'))
    assert finetuning == ours
    assert {k: v for k, v in ours.items() if not k.startswith('head.fc.')} == pretraining


def test_zoo_lists_the_52_published_models():
    names = list_models('*_simclrv2-*_in1k')
    assert len(names) == 52
    for arch in SIMCLRV2_ARCHS:
        model = f'resnet{arch.depth}-{arch.width}x-sk{int(arch.sk)}'
        sets = {'pre_linear': ('pretrained', arch.linear_eval, 0, 'pre'),
                'finetune-1pct': ('finetuned_1pct', arch.ft_1pct, 1, 'finetune-1pct'),
                'finetune-10pct': ('finetuned_10pct', arch.ft_10pct, 1, 'finetune-10pct'),
                'finetune-100pct': ('finetuned_100pct', arch.ft_100pct, 0, 'finetune-100pct')}
        for suffix, (subset, top1, out_layer, config) in sets.items():
            info = get_model_info(f'{model}_simclrv2-{suffix}_in1k')
            assert info.converter == 'simclrv2_tf' and info.collection == 'SimCLRv2'
            assert info.weights == checkpoint_url(subset, arch.name) and f'model.ckpt-{STEPS[subset]}.' in info.weights
            assert info.results[0]['Metrics']['Top 1 Accuracy'] == top1
            assert osp.basename(info.config) == f'{model}_simclrv2-{config}_{RECIPE}.py'
            cfg = Config.fromfile(info.config).model
            assert {k: cfg.backbone[k] for k in ('depth', 'width_multiplier', 'sk_ratio')} == \
                {k: v for k, v in arch.backbone_cfg().items() if k != 'type'}
            assert cfg.neck.out_layer == out_layer and cfg.neck.in_channels == cfg.head.in_channels == arch.feat_dim


def test_zoo_converts_on_first_use(tmp_path, mirrored, monkeypatch):  # noqa: F811
    """``Converter: simclrv2_tf``: the .index and .data files come through the mirror once, a damaged download is
    deleted with the error (and fetched afresh), the converted file is cached with its sha256 and the downloads
    removed; get_model / inference_model / extract_features use it; a changed cached file is refused."""
    url = 'https://storage.googleapis.com/simclr-checkpoints/simclrv2/finetuned_10pct/r50_tiny_sk1/model.ckpt-3754'
    url += '.index'
    served = url.split('://', 1)[1][:-len('.index')]
    data = open(PREFIX + '.data-00000-of-00001', 'rb').read()
    mirrored.add(served + '.index', open(PREFIX + '.index', 'rb').read())
    mirrored.add(served + '.data-00000-of-00001', data[:len(data) // 2])  # served in full, but cut short
    zoo = tmp_path / 'zoo.yml'
    zoo.write_text(f'Models:\n  - Name: tiny-v2\n    Config: {tiny_config(tmp_path, "finetune-10pct")}\n'
                   f'    Weights: {url}\n    Converter: simclrv2_tf\n')
    monkeypatch.setenv('MMSIMCLR_MODEL_ZOO', str(zoo))
    cache_dir = os.environ['MMSIMCLR_CACHE']
    with pytest.raises(TFCheckpointError, match='truncated'):
        get_model('tiny-v2', pretrained=True, device='cpu')
    assert os.listdir(cache_dir) == []
    mirrored.add(served + '.data-00000-of-00001', data)
    model = get_model('tiny-v2', pretrained=True, device='cpu')
    assert rel_err(outputs(model, 'odd')['logits'], REF['ft_odd']) < TOL
    converted = osp.join(cache_dir, 'simclrv2_finetuned_10pct_r50_tiny_sk1_mmsimclr.pth')
    assert sorted(os.listdir(cache_dir)) == [osp.basename(converted), osp.basename(converted) + '.sha256']
    assert open(converted + '.sha256').read().split()[0] == sha256_of(converted)
    image = np.random.default_rng(0).integers(0, 256, (48, 60, 3), dtype=np.uint8)
    result = inference_model('tiny-v2', image, device='cpu')
    assert 0 <= result['pred_label'] < 10
    assert extract_features('tiny-v2', [image, image], device='cpu', progress=False)['feat'].shape == (2, 128)
    assert mirrored.count(served + '.index') == 2 and mirrored.count(served + '.data-00000-of-00001') == 2
    with open(converted, 'ab') as f:
        f.write(b'x')
    with pytest.raises(ChecksumError, match='changed on disk'):
        get_model('tiny-v2', pretrained=True, device='cpu')
    assert not osp.exists(converted)
