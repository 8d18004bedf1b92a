"""tools/test.py evaluates a classifier checkpoint and writes its metrics."""
import json
import os
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config

from mmsimclr.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LINEAR = osp.join(ROOT, 'configs', 'benchmarks', 'resnet18_simclr-cifar-pre_1xb512-linear-coslr-100e_cifar10.py')


def test_test_tool_reports_accuracy(tiny_data, tmp_path):
    cfg = Config.fromfile(LINEAR)
    cfg.model.backbone.init_cfg = None
    cfg.model.head.num_classes = 4
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    with torch.no_grad():  # a head that always answers class 2: top-1 must be exactly 25% on 4 balanced classes
        model.head.fc.weight.zero_()
        model.head.fc.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0]))
    ckpt = tmp_path / 'linear.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    out = tmp_path / 'metrics.json'
    options = [f'test_dataloader.dataset.data_root={tiny_data}', 'test_dataloader.num_workers=0',
               'test_dataloader.persistent_workers=False', 'test_dataloader.batch_size=16',
               'model.head.num_classes=4', 'model.backbone.init_cfg=None']
    proc = subprocess.run([sys.executable, 'tools/test.py', LINEAR, str(ckpt), '--work-dir', str(tmp_path / 'w'),
                           '--out', str(out), '--cfg-options'] + options, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = json.loads(out.read_text())
    assert metrics['accuracy/top1'] == 25.0


def test_test_tool_names_a_missing_checkpoint(tmp_path):
    proc = subprocess.run([sys.executable, 'tools/test.py', LINEAR, str(tmp_path / 'nope.pth')], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and 'nope.pth does not exist' in proc.stderr


def test_test_tool_checks_the_test_data_first(tmp_path):
    """tools/test.py shares train.py's set-up: the config check (here: the test data is missing) stops it before
    the runner is built, naming the key and the fix."""
    import pytest

    from tools.test import main
    ckpt = tmp_path / 'linear.pth'
    torch.save({'state_dict': {}}, ckpt)
    with pytest.raises(SystemExit) as info:
        main([LINEAR, str(ckpt), '--work-dir', str(tmp_path / 'w'), '--cfg-options',
              f'test_dataloader.dataset.data_root={tmp_path / "nowhere"}'])
    message = str(info.value)
    assert message.startswith('Config error') and 'test_dataloader.dataset.data_root' in message
    assert '--cfg-options test_dataloader.dataset.data_root=PATH' in message
    assert not (tmp_path / 'w').exists()  # nothing was started
