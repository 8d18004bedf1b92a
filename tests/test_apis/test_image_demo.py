"""demo/image_demo.py: top-k classes for a classifier, embedding summary for SimCLR models, clean errors."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
from PIL import Image

from .conftest import FAVOURED, LINEAR_CONFIG, REPO, sha8


@pytest.fixture(scope='module')
def demo():
    spec = importlib.util.spec_from_file_location('image_demo', osp.join(REPO, 'demo/image_demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prints_top_classes(demo, mirrored, zoo_entry, linear_ckpt, tmp_path, capsys):
    rel = f'demo/linear-{sha8(linear_ckpt)}.pth'
    mirrored.add(rel, linear_ckpt)
    zoo_entry('demo-linear', LINEAR_CONFIG, 'https://download.openmmlab.com/' + rel)
    Image.new('RGB', (64, 48), (10, 200, 30)).save(tmp_path / 'x.png')
    assert demo.main([str(tmp_path / 'x.png'), 'demo-linear', '--device', 'cpu', '--topk', '3']) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 1 + 3
    assert rows[1].split()[:2] == ['1', str(FAVOURED)] and rows[1].endswith(IMAGENET_CATEGORIES[FAVOURED])


def test_embedding_summary(demo):
    text = demo.format_result({'feat': np.full(2048, 0.5, np.float32), 'proj': np.ones(128, np.float32)}, 5)
    assert text.splitlines() == ['feat: shape (2048,), L2 norm 22.6274', 'proj: shape (128,), L2 norm 11.3137']


def test_unknown_model_is_an_error_not_a_traceback(demo, tmp_path, capsys):
    assert demo.main([str(tmp_path / 'x.png'), 'simclr-200e']) == 1
    assert 'Did you mean' in capsys.readouterr().err
