"""model_zoo.yml: the four published SimCLR models, and metadata that agrees with the configs they name (every
entry: its config exists and builds a model with the listed parameter count)."""
import copy
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

import mmsimclr
from mmsimclr.apis import get_model, get_model_info, list_models
from mmsimclr.apis.download import expected_sha256_prefix
from mmsimclr.apis.model_zoo import DEFAULT_ZOO_FILE, load_zoo_file

from .conftest import LINEAR_CONFIG

BASE = 'https://download.openmmlab.com/mmselfsup/1.x/simclr/'
PUBLISHED = {
    'simclr_resnet50_16xb256-coslr-200e_in1k': '4d9cce50',
    'simclr_resnet50_16xb256-coslr-800e_in1k': '85fcc4de',
    'resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k': 'f12c0457',
    'resnet50_simclr-800e-pre_8xb512-linear-coslr-90e_in1k': 'b80ae1e5',
}
TOP1 = {'resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k': 66.9,
        'resnet50_simclr-800e-pre_8xb512-linear-coslr-90e_in1k': 69.2}


def test_zoo_lists_the_published_models():
    assert set(PUBLISHED) <= set(list_models())
    assert mmsimclr.list_models('800e') == sorted(n for n in PUBLISHED if '800e' in n)
    assert mmsimclr.list_models('simclr_*') == sorted(n for n in PUBLISHED if n.startswith('simclr_'))
    for name, digest in PUBLISHED.items():
        info = get_model_info(name)
        assert info.weights.startswith(BASE) and expected_sha256_prefix(info.weights) == digest
        assert info.collection == 'SimCLR' and info.metadata['Training Data'] == 'ImageNet-1k'
        for downstream in info.downstream:
            assert downstream in PUBLISHED
        if name in TOP1:
            assert info.results[0]['Metrics']['Top 1 Accuracy'] == TOP1[name]
            assert info.results[0]['Dataset'] == 'ImageNet-1k'
        else:
            assert info.results is None and len(info.downstream) == 1


def _total_batch(config_path: str, cfg: Config) -> int:
    gpus, per_gpu = map(int, re.search(r'_(\d+)xb(\d+)-', config_path).groups())
    assert cfg.train_dataloader.batch_size == per_gpu, config_path
    return gpus * per_gpu


@pytest.mark.parametrize('name', sorted(PUBLISHED))
def test_metadata_agrees_with_config_and_model(name):
    info = get_model_info(name)
    cfg = Config.fromfile(info.config)
    assert info.metadata['Epochs'] == cfg.train_cfg.max_epochs
    assert info.metadata['Batch Size'] == _total_batch(info.config, cfg) == cfg.auto_scale_lr.base_batch_size
    model = get_model(name, pretrained=False, device='cpu')
    assert info.metadata['Parameters'] == sum(p.numel() for p in model.parameters())
    assert type(model).__name__ == ('ImageClassifier' if name in TOP1 else 'SimCLR')


_PARAMS = {}  # model config (without what adds no parameters) -> parameter count, per test process


def _meta_param_count(model_cfg) -> int:
    """Parameters of the model a config builds, built on the meta device (no memory, no initialisation: the 795M
    SimCLRv2 ResNet-152 3x counts in a fraction of a second). Configs that differ only in which head output the
    classifier reads (SimCLRv2Neck.out_layer) share the count."""
    from mmengine.registry import init_default_scope
    from mmsimclr.models.backbones.resnet_sk import _LinspaceOnCPU  # mmpretrain ResNet's linspace(...).item()
    from mmsimclr.registry import MODELS
    from mmsimclr.utils.setup_env import register_all_modules
    key_cfg = copy.deepcopy(model_cfg)
    if isinstance(key_cfg.get('neck'), dict):
        key_cfg.neck.pop('out_layer', None)
    key = repr(key_cfg)
    if key not in _PARAMS:
        register_all_modules(init_default_scope=False)
        init_default_scope('mmsimclr')
        with torch.device('meta'), _LinspaceOnCPU():
            model = MODELS.build(model_cfg)
        _PARAMS[key] = sum(p.numel() for p in model.parameters())
    return _PARAMS[key]


@pytest.mark.parametrize('name', sorted(load_zoo_file(DEFAULT_ZOO_FILE)))
def test_every_entry_names_a_config_with_its_parameter_count(name):
    info = get_model_info(name)
    assert osp.isfile(info.config), info.config
    assert info.metadata['Parameters'] == _meta_param_count(Config.fromfile(info.config).model)


def test_800e_models_are_listed_with_800_epochs():
    assert get_model_info('simclr_resnet50_16xb256-coslr-800e_in1k').metadata['Epochs'] == 800


def test_simclr_state_dict_matches_mmpretrain():
    """OpenMMLab's SimCLR checkpoints were saved from mmpretrain's model: same keys and shapes load unchanged."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    import mmpretrain
    import os.path as osp
    cfg = Config.fromfile(osp.join(osp.dirname(mmpretrain.__file__),
                                   '.mim/configs/simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        theirs = MMPRETRAIN_MODELS.build(cfg.model).state_dict()
    ours = get_model('simclr_resnet50_16xb256-coslr-200e_in1k', pretrained=False, device='cpu').state_dict()
    assert {k: tuple(v.shape) for k, v in theirs.items()} == {k: tuple(v.shape) for k, v in ours.items()}


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match='resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k'):
        get_model('resnet50_simclr-200e-pre_8xb512-linear-90e_in1k')
    with pytest.raises(ValueError, match='resnet50-1x-sk1_simclrv2-pre_linear_in1k'):
        get_model('resnet50-1x-sk1_simclrv2-linear_in1k')


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        get_model('configs/no_such_config.py')


def test_config_without_published_weights_needs_explicit_choice():
    with pytest.raises(ValueError, match='pretrained=PATH_OR_URL'):
        get_model('configs/simclr_r18_1xb16-coslr-2e_tiny.py', pretrained=True)


def test_extra_zoo_file_from_environment(tmp_path, monkeypatch):
    (tmp_path / 'zoo.yml').write_text(
        'Models:\n  - Name: my-linear\n    Config: ' + LINEAR_CONFIG + '\n    Weights: /data/my-linear.pth\n')
    monkeypatch.setenv('MMSIMCLR_MODEL_ZOO', str(tmp_path / 'zoo.yml'))
    assert 'my-linear' in list_models()
    assert get_model_info('my-linear').weights == '/data/my-linear.pth'
    (tmp_path / 'bad.yml').write_text('Models:\n  - Name: no-config\n')
    with pytest.raises(ValueError, match='Config'):
        load_zoo_file(str(tmp_path / 'bad.yml'))
