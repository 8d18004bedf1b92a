"""tools/analysis/transfer_linear.py on the tiny image folder with a tiny SimCLR checkpoint."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image
from mmengine.config import Config

from mmsimclr.registry import MODELS
from tools.analysis.transfer_linear import main as transfer_linear

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')
ARGS = ['--size', '32', '--grid-num', '3', '--grid-min', '1e-1', '--grid-max', '1e1', '--no-progress',
        '--device', 'cpu']


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    """A randomly initialised tiny SimCLR model saved as mmengine runners save it (state_dict + meta.cfg)."""
    cfg = Config.fromfile(TINY)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_1.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {'cfg': cfg.pretty_text}}, path)
    return path


@pytest.fixture(scope='module')
def colour_data(tmp_path_factory):
    """6 classes of noisy flat-coloured 32x32 images (8 train, 6 test each): any features separate them, so a
    label/feature misalignment anywhere in the tool would show as chance accuracy."""
    root = tmp_path_factory.mktemp('colours')
    rng = np.random.default_rng(0)
    colours = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20), (20, 230, 230), (128, 128, 128)]
    for split, n in (('train', 8), ('test', 6)):
        for c, colour in enumerate(colours):
            (root / split / f'c{c}').mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(np.array(colour) + rng.normal(0, 12, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / f'c{c}' / f'{i}.png')
    return str(root)


def test_the_model_keeps_its_preprocessing(colour_data, tiny_checkpoint):
    """linear_transfer preprocesses with the transfer pipeline during the call only: a later inference_model on the
    same model uses its own config (it used to keep the transfer pipeline)."""
    import mmsimclr.apis.transfer as transfer
    from mmsimclr.apis import get_model, linear_transfer
    net = get_model(tiny_checkpoint, device='cpu')
    before = net.cfg
    before_text = before.pretty_text
    used = []
    real = transfer.extract_features

    def spy(model, *args, **kwargs):
        used.append(model.cfg.test_dataloader.dataset.pipeline)
        return real(model, *args, **kwargs)

    transfer.extract_features = spy
    try:
        linear_transfer(net, osp.join(colour_data, 'train'), osp.join(colour_data, 'test'), size=32, grid=[1.0],
                        progress=False)
    finally:
        transfer.extract_features = real
    assert net.cfg is before and net.cfg.pretty_text == before_text
    # during the call: the paper's transfer preprocessing, short side to `size` (bicubic), centre crop
    assert len(used) == 2 and [t['type'] for t in used[0]] == ['LoadImageFromFile', 'ResizeEdge', 'CenterCrop',
                                                                'PackInputs']
    assert used[0][1]['scale'] == 32 and used[0][1]['interpolation'] == 'bicubic' and used[0][2]['crop_size'] == 32


@pytest.fixture(scope='module')
def ckpt_run(colour_data, tiny_checkpoint, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('out') / 'result.json')
    return transfer_linear([tiny_checkpoint, colour_data, '--out', out] + ARGS), out


def test_checkpoint_alone(ckpt_run, capsys):
    result, out = ckpt_run
    assert (result['num_train'], result['num_test'], result['num_classes'], result['feature_dim']) == (48, 36, 6, 64)
    grid = [f'{v:.6g}' for v in np.logspace(-1, 1, 3)]
    assert sorted(result['val_top1']) == sorted(grid) and f'{result["l2"]:.6g}' in grid
    assert result['top1'] > 90 and result['top5'] == 100
    with open(out) as f:
        assert json.load(f)['top1'] == result['top1']

    printed = capsys.readouterr().out
    assert not printed or f'test top-1 {result["top1"]:.2f}%' in printed  # printed during the fixture


def test_checkpoint_config_and_zoo_name_load_the_same_model(tiny_checkpoint, tiny_data):
    """What the tool's MODEL may be, through the one loader: a checkpoint alone, a config with it, a zoo name."""
    from mmsimclr.apis import get_model, register_model, unregister_model
    saved = torch.load(tiny_checkpoint, weights_only=True)['state_dict']
    register_model('tiny-transfer-test', TINY, weights=tiny_checkpoint, force=True)
    try:
        models = [get_model(tiny_checkpoint, device='cpu'), get_model(tiny_checkpoint, True, device='cpu'),
                  get_model(TINY, tiny_checkpoint, device='cpu'),
                  get_model('tiny-transfer-test', True, device='cpu')]
    finally:
        unregister_model('tiny-transfer-test')
    for model in models:
        assert not model.training and type(model).__name__ == 'SimCLR'
        state = model.state_dict()
        assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved)
    with pytest.raises(ValueError, match='not both'):
        get_model(tiny_checkpoint, tiny_checkpoint)
    with pytest.raises(ValueError, match='not both'):
        transfer_linear([tiny_checkpoint, tiny_data, '--checkpoint', tiny_checkpoint] + ARGS)


def test_tiny_data_with_a_fixed_lambda(tiny_data, tiny_checkpoint, capsys):
    result = transfer_linear([tiny_checkpoint, tiny_data, '--l2', '0.01'] + ARGS)
    assert (result['num_train'], result['num_test'], result['num_classes']) == (64, 64, 4)
    assert result['val_top1'] == {} and result['l2'] == 0.01  # a fixed lambda: no grid search
    assert result['top5'] is None and 0 <= result['top1'] <= 100  # fewer than 5 classes: no top-5
    assert f'lambda = 0.01 (of 1); test top-1 {result["top1"]:.2f}%' in capsys.readouterr().out


def test_clear_errors(tiny_data, tmp_path):
    bare = str(tmp_path / 'bare.pth')
    torch.save({'state_dict': {}}, bare)
    with pytest.raises(ValueError, match='does not carry its config'):
        transfer_linear([bare, tiny_data] + ARGS)
    with pytest.raises(FileNotFoundError, match='must hold'):
        transfer_linear([bare, str(tmp_path)] + ARGS)


def test_stored_config_is_read_as_data_never_executed(tiny_data, tmp_path):
    """A checkpoint's meta['cfg'] is untrusted text: the model is built from its literal entries while code in it
    (a statement, custom_imports of mmselfsup as in published files, a computed model entry) never runs."""
    from mmsimclr.apis import get_model
    marker = tmp_path / 'executed'
    cfg = Config.fromfile(TINY)
    torch.manual_seed(0)
    state = MODELS.build(cfg.model).state_dict()
    text = (f"import os; open({str(marker)!r}, 'w').close()\n"
            "custom_imports = dict(imports=['mmselfsup.models'], allow_failed_imports=False)\n"
            f"_ = __import__('os').system('touch {marker}')\n" + cfg.pretty_text)
    ckpt = str(tmp_path / 'code.pth')
    torch.save({'state_dict': state, 'meta': {'cfg': text}}, ckpt)
    model = get_model(ckpt, device='cpu')
    assert not marker.exists()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    result = transfer_linear([ckpt, tiny_data, '--l2', '0.01'] + ARGS)
    assert not marker.exists() and result['num_train'] == 64

    computed = f"model = dict(type=str(open({str(marker)!r}, 'w')))\n"
    torch.save({'state_dict': state, 'meta': {'cfg': computed}}, ckpt)
    with pytest.raises(ValueError, match='cannot be read as data'):
        transfer_linear([ckpt, tiny_data] + ARGS)
    assert not marker.exists()


def test_published_mmselfsup_checkpoint_alone_names_the_fix(repo_root):
    """A published OpenMMLab file stores an mmselfsup config (custom_imports, default_scope='mmselfsup'): read as
    data (no import of mmselfsup is attempted), then refused with the command that works."""
    from mmsimclr.apis import get_model
    path = osp.join(repo_root, 'tests', 'data', 'legacy_checkpoints', 'simclr_resnet50-w8_pretrain_raw.pth')
    with pytest.raises(ValueError, match=r"default_scope='mmselfsup'.*get_model\(CONFIG, pretrained="):
        get_model(path, device='cpu')
