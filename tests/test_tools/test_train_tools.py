"""End to end: tools/train.py on a tiny config; checkpoints written, resumed, reloaded (tools/dist_train.sh with two
ranks, a checkpoint and a resume: test_elastic_restart.py)."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmsimclr.registry import MODELS

pytestmark = pytest.mark.shared_setup  # one worker makes the module fixture once

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')


def run(cmd, **kw):
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400, **kw)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def trained(tiny_data, tmp_path_factory):
    """One single-process run of 2 epochs (checkpoints at both epochs)."""
    work = str(tmp_path_factory.mktemp('train'))
    run([sys.executable, 'tools/train.py', TINY, '--work-dir', work, '--cfg-options',
         f'train_dataloader.dataset.data_root={tiny_data}'])
    return work


def test_train_writes_checkpoints(trained):
    assert os.path.isfile(osp.join(trained, 'epoch_1.pth')) and os.path.isfile(osp.join(trained, 'epoch_2.pth'))
    with open(osp.join(trained, 'last_checkpoint')) as f:
        assert f.read().strip().endswith('epoch_2.pth')


def test_resume_auto_continues_weights_only(trained, tiny_data):
    out = run([sys.executable, 'tools/train.py', TINY, '--work-dir', trained, '--resume', '--cfg-options',
               f'train_dataloader.dataset.data_root={tiny_data}', 'train_cfg.max_epochs=3'])
    assert 'resumed epoch: 2' in out
    assert os.path.isfile(osp.join(trained, 'epoch_3.pth'))


def test_load_from_and_init_cfg_pretrained(trained, tiny_data, tmp_path):
    ckpt = osp.join(trained, 'epoch_2.pth')
    out = run([sys.executable, 'tools/train.py', TINY, '--work-dir', str(tmp_path / 'ft'), '--cfg-options',
               f'train_dataloader.dataset.data_root={tiny_data}', f'load_from={ckpt}', 'train_cfg.max_epochs=1'])
    assert 'Load checkpoint from' in out

    # init_cfg=Pretrained with a prefix, as the linear-evaluation configs do
    from mmengine.config import Config
    cfg = Config.fromfile(TINY)
    backbone = MODELS.build(dict(cfg.model.backbone, init_cfg=dict(type='Pretrained', checkpoint=ckpt,
                                                                  prefix='backbone.')))
    backbone.init_weights()
    state = torch.load(ckpt, weights_only=False)['state_dict']
    assert torch.equal(backbone.conv1.weight, state['backbone.conv1.weight'])


def test_mistyped_config_is_one_line_before_anything_heavy_is_imported(tmp_path):
    """A typo in the config name: exit status 2 and one argparse-style line with the close names, reported before
    torch, mmengine's runner or mmpretrain are imported (the script is run as ``python tools/train.py`` would)."""
    script = ('import runpy, sys\n'
              f'sys.argv = [{osp.join(ROOT, "tools", "train.py")!r}, "simclr_r50_16xb256-coslr-200e_in1.py"]\n'
              'try:\n'
              '    runpy.run_path(sys.argv[0], run_name="__main__")\n'
              'finally:\n'
              '    print("heavy:", sorted(m for m in ("torch", "mmpretrain", "mmengine.runner", "mmsimclr") '
              'if m in sys.modules))\n')
    proc = subprocess.run([sys.executable, '-c', script], cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f'train.py: error: config simclr_r50_16xb256-coslr-200e_in1.py does not exist (absolute: '
                           f'{tmp_path}/simclr_r50_16xb256-coslr-200e_in1.py). Did you mean '
                           'simclr_r50_16xb256-coslr-200e_in1k, simclr_r50_16xb256-coslr-800e_in1k? '
                           '(packaged config names work as they are)\n')
    assert proc.stdout.strip() == 'heavy: []'


@pytest.mark.parametrize('typed', ['simclr_r18_1xb16-coslr-2e_tiny', 'simclr_r18_1xb16-coslr-2e_tiny.py',
                                   'configs/simclr_r18_1xb16-coslr-2e_tiny.py'])
def test_train_accepts_a_packaged_config_by_name(typed, tmp_path, monkeypatch):
    from tools.train import build_config, parse_args
    monkeypatch.chdir(tmp_path)  # not the repository: the name is looked up in the packaged configs
    args = parse_args([typed])
    assert args.config == TINY
    assert build_config(args).work_dir == osp.join('work_dirs', 'simclr_r18_1xb16-coslr-2e_tiny')


def test_test_tool_accepts_a_benchmark_name_and_names_a_missing_checkpoint(tmp_path, monkeypatch, capsys):
    from tools.test import parse_args
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / 'linear.pth'
    ckpt.write_bytes(b'')
    args = parse_args(['benchmarks/resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k', str(ckpt)])
    assert args.config == osp.join(ROOT, 'configs', 'benchmarks',
                                   'resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k.py')
    with pytest.raises(SystemExit) as info:
        parse_args([args.config, 'nope.pth'])
    assert info.value.code == 2
    err = capsys.readouterr().err  # '<prog>: error: ...', prog being test.py when run as a script
    assert err.endswith(f': error: checkpoint nope.pth does not exist (absolute: {tmp_path}/nope.pth)\n')
    assert err.count('\n') == 1


def test_train_names_a_missing_resume_checkpoint(tmp_path, monkeypatch, capsys):
    from tools.train import parse_args
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        parse_args([TINY, '--resume', 'work_dirs/x/epoch_3.pth'])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert (f': error: --resume work_dirs/x/epoch_3.pth: no such checkpoint (absolute: '
            f'{tmp_path}/work_dirs/x/epoch_3.pth)') in err and err.count('\n') == 1
