"""End to end: tools/train.py and tools/dist_train.sh on a tiny config; checkpoints written, resumed, reloaded."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmsimclr.registry import MODELS

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


@pytest.mark.slow
def test_dist_train_two_cpu_processes_then_resume(tiny_data, tmp_path):
    work = str(tmp_path / 'dist')
    args = ['--work-dir', work, '--cfg-options', f'train_dataloader.dataset.data_root={tiny_data}',
            'train_dataloader.batch_size=8']
    env_port = {'PORT': str(29600 + os.getpid() % 300)}
    os.environ.update(env_port)
    out = run(['bash', 'tools/dist_train.sh', TINY, '2'] + args + ['train_cfg.max_epochs=1'])
    assert 'Distributed training: True' in out and 'gloo' in out
    assert os.path.isfile(osp.join(work, 'epoch_1.pth'))
    out = run(['bash', 'tools/dist_train.sh', TINY, '2', '--resume', 'auto'] + args)
    assert 'resumed epoch: 1' in out
    assert os.path.isfile(osp.join(work, 'epoch_2.pth'))


def test_train_reports_missing_config():
    proc = subprocess.run([sys.executable, 'tools/train.py', 'configs/nope.py'], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode != 0 and 'configs/nope.py does not exist' in proc.stderr
