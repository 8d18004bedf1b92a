"""The SimCLR paper's TensorFlow checkpoints: conversion without TensorFlow, checked against TensorFlow's outputs.

The fixture (tests/data/simclr_tf, made by its make_fixture.py with TensorFlow 2.21's ``tf.compat.v1.layers``) is
the paper's ResNet-50 v1 at width 1/8 with TF-named variables, random weights, non-trivial BN statistics, and TF's
pooled features / logits on even, odd and mixed input sizes.
"""
import os
import os.path as osp
import shutil
import zipfile

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmsimclr.apis import get_model, get_model_info, inference_model
from mmsimclr.apis.download import ChecksumError, sha256_of
from mmsimclr.apis.simclr_tf import convert_file
from mmsimclr.utils.tf_checkpoint import TFCheckpoint, TFCheckpointError
from tools.model_converters.simclr_tf_to_mmsimclr import main as convert_main
from ..test_apis.conftest import cache, mirrored, server  # noqa: F401 (fixtures)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(REPO, 'tests/data/simclr_tf')
PREFIX = osp.join(DATA, 'model.ckpt-7')
CONFIG_1X = osp.join(REPO, 'configs/simclr-tf/resnet50-1x_simclr-tf-pre_8xb512-linear-coslr-90e_in1k.py')
REF = np.load(osp.join(DATA, 'reference.npz'))
SIZES = ('even', 'odd', 'mixed')
TOP1 = {1: 69.1, 2: 74.2, 4: 76.6}


def tiny_config(tmp_path) -> str:
    """The paper's 1x config at the fixture's width (8 channels) and 10 classes."""
    path = tmp_path / 'resnet50-tiny_simclr-tf-pre_linear.py'
    path.write_text(f"_base_ = ['{CONFIG_1X}']\nmodel = dict(data_preprocessor=dict(num_classes=10), "
                    "backbone=dict(stem_channels=8, base_channels=8), head=dict(num_classes=10, in_channels=256))\n")
    return str(path)


def outputs(model, key):
    """Pooled features and logits through the config's own data preprocessor (BGR 0..255 in, RGB / 255 used)."""
    rgb = torch.from_numpy(REF[f'x_{key}']).permute(0, 3, 1, 2)
    bgr255 = list(rgb.flip(1) * 255)
    with torch.no_grad():
        inputs = model.data_preprocessor({'inputs': bgr255}, False)['inputs']
        feat = model.extract_feat(inputs)[-1]
        return feat, model.head.fc(feat)


def rel_err(a, b):
    b = torch.from_numpy(b)
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('simclr_tf') / 'r50_tiny.pth')
    assert convert_main([PREFIX, path]) == 0
    return path


@pytest.fixture
def tiny_model(converted, tmp_path):
    return get_model(tiny_config(tmp_path), pretrained=converted, device='cpu')


def test_reader_reads_the_tf_bundle():
    ckpt = TFCheckpoint(PREFIX)
    assert len([n for n in ckpt.names() if n.startswith('base_model/conv2d')]) == 53  # ResNet-50: 1 + 16*3 + 4
    assert ckpt.read('global_step') == 7 and ckpt.dtype('global_step') == np.int64
    assert ckpt.shape('base_model/conv2d/kernel') == (7, 7, 3, 8)
    assert ckpt.shape('base_model/conv2d_1/kernel') == (1, 1, 8, 32)  # first block: projection shortcut first
    assert ckpt.shape('head_supervised/linear_layer/dense/kernel') == (256, 10)


@pytest.mark.parametrize('key', SIZES)
def test_converted_model_matches_tensorflow(tiny_model, key):
    feat, logits = outputs(tiny_model, key)
    assert rel_err(feat, REF[f'feat_{key}']) < 1e-4
    assert rel_err(logits, REF[f'logits_{key}']) < 1e-4


def test_symmetric_max_pool_padding_does_not_match(tiny_model):
    """PyTorch's MaxPool2d(3, 2, 1) agrees on odd sizes only: on an even side it pools a grid shifted by one."""
    tiny_model.backbone.maxpool = torch.nn.MaxPool2d(3, 2, 1)
    for key in ('even', 'mixed'):
        feat, logits = outputs(tiny_model, key)
        assert rel_err(feat, REF[f'feat_{key}']) > 1e-2 and rel_err(logits, REF[f'logits_{key}']) > 1e-2
    feat, _ = outputs(tiny_model, 'odd')
    assert rel_err(feat, REF['feat_odd']) < 1e-4


def _archive(tmp_path, name='ResNet50_tiny'):
    """A zip laid out like the published ones: <name>/model.ckpt-N.* and the TF-Hub module <name>/hub/."""
    path = tmp_path / f'{name}.zip'
    with zipfile.ZipFile(path, 'w') as zf:
        for suffix in ('.index', '.data-00000-of-00001'):
            zf.write(PREFIX + suffix, f'{name}/model.ckpt-7{suffix}')
            zf.write(PREFIX + suffix, f'{name}/hub/variables/variables{suffix}')
        zf.writestr(f'{name}/hub/tfhub_module.pb', b'')
    return path


def test_zip_hub_folder_and_prefix_convert_alike(converted, tmp_path):
    reference = torch.load(converted, weights_only=True)['state_dict']
    archive = _archive(tmp_path)
    hub = tmp_path / 'hub'
    (hub / 'variables').mkdir(parents=True)
    for suffix in ('.index', '.data-00000-of-00001'):
        shutil.copy(PREFIX + suffix, hub / 'variables' / f'variables{suffix}')
    for source in (str(archive), str(hub), PREFIX + '.index'):
        dst = str(tmp_path / 'out.pth')
        arch = convert_file(source, dst)
        assert arch['depth'] == 50 and arch['stem_channels'] == 8 and arch['num_classes'] == 10
        state = torch.load(dst, weights_only=True)['state_dict']
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in state)


def test_bad_inputs_are_refused_clearly(tmp_path, converted, capsys):
    assert convert_main([PREFIX, converted]) == 2  # never overwrites without --force
    assert 'exists; pass --force' in capsys.readouterr().err
    assert convert_main([str(tmp_path / 'nothing'), str(tmp_path / 'x.pth')]) == 1
    assert 'is not a TensorFlow checkpoint' in capsys.readouterr().err
    truncated = tmp_path / 'cut.ckpt'
    (tmp_path / 'cut.ckpt.index').write_bytes(open(PREFIX + '.index', 'rb').read()[:-100])
    with pytest.raises(TFCheckpointError, match='truncated'):
        TFCheckpoint(str(truncated))
    broken = tmp_path / 'broken.zip'
    broken.write_bytes(_archive(tmp_path).read_bytes().replace(b'head_supervised', b'head_superXised', 1))
    with pytest.raises(TFCheckpointError, match='not an intact zip'):
        convert_file(str(broken), str(tmp_path / 'y.pth'))
    assert not (tmp_path / 'y.pth').exists()


def test_zoo_lists_the_papers_models():
    for width, top1 in TOP1.items():
        info = get_model_info(f'resnet50-{width}x_simclr-tf-pre_8xb512-linear-coslr-90e_in1k')
        assert info.weights == f'https://storage.googleapis.com/simclr-gcs/checkpoints/ResNet50_{width}x.zip'
        assert info.converter == 'simclr_tf' and info.results[0]['Metrics']['Top 1 Accuracy'] == top1
        cfg = Config.fromfile(info.config)
        assert cfg.model.backbone.stem_channels == cfg.model.backbone.base_channels == 64 * width
        assert cfg.model.head.in_channels == 2048 * width
    model = get_model('resnet50-1x_simclr-tf-pre_8xb512-linear-coslr-90e_in1k', device='cpu')
    assert type(model.backbone).__name__ == 'ResNetTFStem'
    assert sum(p.numel() for p in model.parameters()) == \
        get_model_info('resnet50-1x_simclr-tf-pre_8xb512-linear-coslr-90e_in1k').metadata['Parameters']


def test_zoo_converts_on_first_use(tmp_path, mirrored, monkeypatch):  # noqa: F811
    """A zoo entry with ``Converter: simclr_tf``: the archive comes through the mirror once, is converted into the
    cache with its sha256 recorded, the archive is removed; later uses read the cache; a changed file is refused."""
    url = 'https://storage.googleapis.com/simclr-gcs/checkpoints/ResNet50_tiny.zip'
    served = 'storage.googleapis.com/simclr-gcs/checkpoints/ResNet50_tiny.zip'
    mirrored.add(served, _archive(tmp_path).read_bytes())
    zoo = tmp_path / 'zoo.yml'
    zoo.write_text(f'Models:\n  - Name: tiny-tf\n    Config: {tiny_config(tmp_path)}\n    Weights: {url}\n'
                   '    Converter: simclr_tf\n')
    monkeypatch.setenv('MMSIMCLR_MODEL_ZOO', str(zoo))
    model = get_model('tiny-tf', pretrained=True, device='cpu')
    feat, logits = outputs(model, 'even')
    assert rel_err(logits, REF['logits_even']) < 1e-4
    cache_dir = os.environ['MMSIMCLR_CACHE']
    converted = osp.join(cache_dir, 'ResNet50_tiny_mmsimclr.pth')
    assert sorted(os.listdir(cache_dir)) == ['ResNet50_tiny_mmsimclr.pth', 'ResNet50_tiny_mmsimclr.pth.sha256']
    assert open(converted + '.sha256').read().split()[0] == sha256_of(converted)
    image = (np.random.default_rng(0).uniform(0, 255, (40, 50, 3))).astype(np.uint8)
    result = inference_model('tiny-tf', image, device='cpu')
    assert 0 <= result['pred_label'] < 10 and mirrored.count(served) == 1
    with open(converted, 'ab') as f:
        f.write(b'x')
    with pytest.raises(ChecksumError, match='changed on disk'):
        get_model('tiny-tf', pretrained=True, device='cpu')
    assert not osp.exists(converted)
