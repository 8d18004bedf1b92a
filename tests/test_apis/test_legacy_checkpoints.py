"""OpenMMLab's published SimCLR checkpoints load, weights-only, in every user path.

The fixtures in ``tests/data/legacy_checkpoints`` were made by the stack that made the published files (mmselfsup
1.0.0rc1 on mmengine 0.1.0, torch 2.0.1, numpy 1.23.5; ``make_legacy_checkpoints.py`` there), at a reduced width of
ResNet-50's layout: a SimCLR pretrain file and a linear classifier, each raw (zip, with ``optimizer``) and published
(legacy format, named with its sha256 prefix). Their pickles name ``numpy.core.multiarray`` (numpy 1) and
``HistoryBuffer``; ``manifest.json`` records float64 sums of every tensor as the old stack computed them, so "the
weights equal the file's" is checked without trusting the loader under test. CI runs this file under numpy 2 and
numpy 1.26 (``make test``).
"""
import json
import logging
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmsimclr.utils.checkpoint import STALE_BUFFERS, safe_torch_load

from .conftest import LINEAR_CONFIG, REPO, SIMCLR_CONFIG

pytestmark = pytest.mark.checkpoint

FIXTURES = osp.join(REPO, 'tests', 'data', 'legacy_checkpoints')
MANIFEST = json.load(open(osp.join(FIXTURES, 'manifest.json')))
URL_DIR = 'mmselfsup/1.x/simclr/legacy/'  # where a published file sits under https://download.openmmlab.com/


def _file(kind: str, fmt: str) -> str:
    """Name of the fixture of ``kind`` ('pretrain' | 'linear') in ``fmt`` ('zip' raw | 'legacy' published)."""
    names = [n for n, f in MANIFEST['files'].items() if kind in n and f['format'] == fmt]
    assert len(names) == 1, names
    return names[0]


FILES = [(kind, fmt) for kind in ('pretrain', 'linear') for fmt in ('legacy', 'zip')]


def _overrides(kind: str) -> dict:
    """Our config's model, at the fixtures' reduced width (read from the manifest, as the old stack built it)."""
    model = MANIFEST['files'][_file(kind, 'legacy')]['model']
    backbone = {k: model['backbone'][k] for k in ('stem_channels', 'base_channels')}
    if kind == 'pretrain':
        neck = {k: model['neck'][k] for k in ('in_channels', 'hid_channels', 'out_channels')}
        return dict(model=dict(backbone=backbone, neck=neck))
    return dict(model=dict(backbone=backbone, head=dict(in_channels=model['head']['in_channels'])))


def _config(kind: str) -> Config:
    cfg = Config.fromfile(SIMCLR_CONFIG if kind == 'pretrain' else LINEAR_CONFIG)
    cfg.merge_from_dict(_overrides(kind))
    return cfg


def _config_file(kind: str, tmp_path) -> str:
    """A config file (inheriting ours) for the reduced width, as a user would write one for a model-zoo entry."""
    path = tmp_path / f'{kind}_w8.py'
    base = SIMCLR_CONFIG if kind == 'pretrain' else LINEAR_CONFIG
    path.write_text(f'_base_ = [{base!r}]\n' + ''.join(f'{k} = {v!r}\n' for k, v in _overrides(kind).items()))
    return str(path)


def assert_weights_are_the_files(state_dict: dict, name: str, prefix: str = '') -> None:
    """Every tensor recorded for fixture ``name`` (under ``prefix``, stripped) is in ``state_dict`` with the sums
    the old stack computed; the stale preprocessor buffers are the only entries allowed to be absent."""
    recorded = {k[len(prefix):]: v for k, v in MANIFEST['files'][name]['state_dict'].items()
                if k.startswith(prefix) and k not in STALE_BUFFERS}
    assert recorded, f'no entries under {prefix!r}'
    assert sorted(recorded) == sorted(k for k in state_dict if k in recorded)
    missing = sorted(set(recorded) - set(state_dict))
    assert not missing, missing
    for key, ref in recorded.items():
        value = state_dict[key].detach().double()
        assert list(value.shape) == ref['shape'], key
        assert value.sum().item() == pytest.approx(ref['sum'], rel=1e-6, abs=1e-6), key
        assert (value * value).sum().item() == pytest.approx(ref['sum_sq'], rel=1e-6, abs=1e-6), key


def test_fixtures_are_what_the_published_files_are():
    """The published fixtures have the published files' traits: legacy format, no optimizer, numpy-1 pickles, the
    sha256 prefix in the name, the stale buffers; the raw ones are zip files with the optimizer."""
    for name, info in MANIFEST['files'].items():
        with open(osp.join(FIXTURES, name), 'rb') as f:
            head = f.read(4)
        assert (head == b'PK\x03\x04') == (info['format'] == 'zip'), name
        assert 'numpy.core.multiarray._reconstruct' in info['pickle_globals']
        assert 'mmengine.logging.history_buffer.HistoryBuffer' in info['pickle_globals']
        assert ('optimizer' in info['top_level_keys']) == (info['format'] == 'zip')
        assert set(STALE_BUFFERS) <= set(info['state_dict'])
        if info['format'] == 'legacy':
            from mmsimclr.apis.download import expected_sha256_prefix, sha256_of
            assert sha256_of(osp.join(FIXTURES, name)).startswith(expected_sha256_prefix(name))


@pytest.mark.parametrize('kind,fmt', FILES)
def test_weights_only_load_reads_everything(kind, fmt):
    name = _file(kind, fmt)
    ckpt = safe_torch_load(osp.join(FIXTURES, name), map_location='cpu')
    assert sorted(ckpt) == sorted(MANIFEST['files'][name]['top_level_keys'])
    assert_weights_are_the_files(ckpt['state_dict'], name)
    assert not set(STALE_BUFFERS) & set(ckpt['state_dict'])
    hub = ckpt['message_hub']
    assert isinstance(hub['runtime_info']['eta'], np.floating)
    assert hub['log_scalars']['train/loss'].current() == pytest.approx(hub['log_scalars']['train/loss'].data[0][-1])
    assert len(ckpt['meta']['dataset_meta']['classes']) == 1000


@pytest.mark.parametrize('kind,fmt', FILES)
def test_get_model_with_config_and_path(kind, fmt, recwarn):
    from mmsimclr.apis import get_model
    name = _file(kind, fmt)
    model = get_model(_config(kind), pretrained=osp.join(FIXTURES, name), device='cpu')
    assert_weights_are_the_files(model.state_dict(), name)
    assert not [w for w in recwarn if 'not used by the model' in str(w.message)]  # stale buffers: no warning
    if kind == 'linear':
        from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
        assert model.dataset_meta['classes'] == list(IMAGENET_CATEGORIES)


def test_unused_entries_still_warn(tmp_path):
    """Only the known stale buffers are dropped silently; a real key mismatch is still reported."""
    from mmsimclr.apis import get_model
    name = _file('pretrain', 'legacy')
    ckpt = safe_torch_load(osp.join(FIXTURES, name))
    ckpt['state_dict']['neck.extra.weight'] = torch.ones(1)
    path = tmp_path / 'extra.pth'
    torch.save(ckpt, path)
    with pytest.warns(UserWarning, match='neck.extra.weight'):
        get_model(_config('pretrain'), pretrained=str(path), device='cpu')


@pytest.fixture
def zoo(zoo_entry, tmp_path):
    """Model-zoo entries for the two published fixtures, with OpenMMLab-style URLs."""
    entries = {}
    for kind in ('pretrain', 'linear'):
        name = _file(kind, 'legacy')
        entries[kind] = (f'legacy-{kind}', name)
        zoo_entry(f'legacy-{kind}', _config_file(kind, tmp_path), f'https://download.openmmlab.com/{URL_DIR}{name}')
    return entries


def _folder_mirror(tmp_path) -> str:
    folder = tmp_path / 'mirror'
    (folder / URL_DIR).mkdir(parents=True)
    for kind in ('pretrain', 'linear'):
        shutil.copy(osp.join(FIXTURES, _file(kind, 'legacy')), folder / URL_DIR)
    return str(folder)


def test_model_zoo_through_a_folder_mirror(zoo, cache, tmp_path, monkeypatch):
    from mmsimclr.apis import get_model, inference_model
    monkeypatch.setenv('MMSIMCLR_MIRROR', _folder_mirror(tmp_path))
    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    zoo_name, file = zoo['pretrain']
    model = get_model(zoo_name, pretrained=True, device='cpu')
    assert_weights_are_the_files(model.state_dict(), file)
    out = inference_model(model, image)  # SimCLR: pooled backbone feature h and projection z
    cfg = MANIFEST['files'][file]['model']
    assert out['feat'].shape == (cfg['neck']['in_channels'], ) and out['proj'].shape == (cfg['neck']['out_channels'], )

    zoo_name, file = zoo['linear']
    result = inference_model(zoo_name, image, device='cpu')  # by name: the published weights
    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
    assert result['pred_class'] == IMAGENET_CATEGORIES[result['pred_label']]
    assert len(result['pred_scores']) == 1000
    assert not list(cache.glob('*.pth')) if cache.exists() else True  # folder-mirror files are used in place


def test_model_zoo_through_an_http_mirror_and_cache(zoo, mirrored, cache):
    from mmsimclr.apis import get_model
    zoo_name, file = zoo['linear']
    with open(osp.join(FIXTURES, file), 'rb') as f:
        mirrored.add(URL_DIR + file, f.read())
    for _ in range(2):
        model = get_model(zoo_name, pretrained=True, device='cpu', progress=False)
        assert_weights_are_the_files(model.state_dict(), file)
    assert mirrored.count(URL_DIR + file) == 1  # the second time from the cache
    assert (cache / file).is_file()


@pytest.mark.parametrize('source', ['path', 'url'])
def test_init_cfg_pretrained(source, mirrored, cache):
    """``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')`` (mmpretrain's linear configs), from
    a local file and from an https URL (mmengine's URL loader alone refuses these files under torch >= 2.6)."""
    from mmpretrain.models import ResNet
    name = _file('pretrain', 'legacy')
    checkpoint = osp.join(FIXTURES, name)
    if source == 'url':
        with open(checkpoint, 'rb') as f:
            mirrored.add(URL_DIR + name, f.read())
        checkpoint = f'https://download.openmmlab.com/{URL_DIR}{name}'
    widths = _overrides('pretrain')['model']['backbone']
    backbone = ResNet(depth=50, out_indices=(3, ), **widths,
                      init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.'))
    backbone.init_weights()
    assert_weights_are_the_files(backbone.state_dict(), name, prefix='backbone.')


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize('kind', ['pretrain', 'linear'])
def test_load_from_in_the_runner(kind, tiny_data, tmp_path):
    """``load_from`` (mmengine's Runner): weights equal the file's, and no warning about the stale buffers."""
    from mmengine.runner import Runner
    name = _file(kind, 'legacy')
    cfg = _config(kind)
    cfg.merge_from_dict(dict(work_dir=str(tmp_path), load_from=osp.join(FIXTURES, name)))
    runner = Runner.from_cfg(cfg)
    records = _Records()
    MMLogger.get_current_instance().addHandler(records)
    try:
        runner.load_checkpoint(cfg.load_from)
    finally:
        MMLogger.get_current_instance().removeHandler(records)
    assert_weights_are_the_files(runner.model.state_dict(), name)
    assert not [m for m in records.messages if 'unexpected key' in m or 'data_preprocessor' in m], records.messages


def test_resume_from_the_raw_checkpoint(tiny_data, tmp_path):
    """``--resume`` from the raw (zip) pretrain file: epoch, iteration, optimizer, schedulers and message hub come
    back, and training goes on from there."""
    from mmengine.runner import Runner
    name = _file('pretrain', 'zip')
    meta = MANIFEST['files'][name]['meta']
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py'))
    cfg.model = _config('pretrain').model
    cfg.merge_from_dict(_overrides('pretrain'))
    cfg.merge_from_dict({
        'work_dir': str(tmp_path), 'resume': True, 'load_from': osp.join(FIXTURES, name),
        'train_dataloader.dataset.data_root': tiny_data, 'train_dataloader.batch_size': 16,
        'train_cfg.max_epochs': meta['epoch'] + 1,
        # the optimizer and schedulers the file was trained with (mmselfsup's config: one LARS group per parameter
        # through custom_keys), so that their saved states fit
        'optim_wrapper': dict(type='OptimWrapper', optimizer=dict(type='LARS', lr=0.3, momentum=0.9,
                                                                  weight_decay=1e-6),
                              paramwise_cfg=dict(custom_keys={k: dict(decay_mult=0, lars_exclude=True)
                                                              for k in ('bn', 'bias', 'downsample.1')}),
                              _delete_=True),
        'param_scheduler': [
            dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
            dict(type='CosineAnnealingLR', T_max=9, by_epoch=True, begin=1, end=10)],
        'default_hooks.checkpoint.interval': 100})
    runner = Runner.from_cfg(cfg)
    runner.train()
    saved = safe_torch_load(osp.join(FIXTURES, name))['optimizer']
    assert len(runner.optim_wrapper.optimizer.param_groups) == len(saved['param_groups'])
    assert runner.epoch == meta['epoch'] + 1
    assert runner.iter > meta['iter']
    history = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(history) > runner.iter - meta['iter']  # the resumed log history is kept


def test_numpy2_runner_checkpoint_loads():
    """A checkpoint today's Runner wrote under numpy 2 (``make_numpy2_checkpoint.py``: ``numpy._core`` pickle names,
    numpy scalars in the message hub) loads weights-only here; under numpy 1.26 (CI's second run) that is the
    numpy-2-to-numpy-1 direction."""
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = _load_checkpoint(osp.join(FIXTURES, 'numpy2_runner_checkpoint.pth'), map_location='cpu')
    assert {'meta', 'state_dict', 'message_hub', 'optimizer'} <= set(ckpt)
    assert isinstance(ckpt['message_hub']['runtime_info']['eta'], np.floating)
    assert all(isinstance(v, torch.Tensor) for v in ckpt['state_dict'].values())
    assert ckpt['message_hub']['log_scalars']['train/loss'].current() > 0
