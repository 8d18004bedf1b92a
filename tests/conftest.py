"""Shared fixtures: registries populated, tiny data made on the fly."""
import os
import os.path as osp
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

os.environ.setdefault('OMP_NUM_THREADS', '2')


@pytest.fixture(scope='session', autouse=True)
def _registered():
    from mmsimclr.utils import register_all_modules
    register_all_modules(init_default_scope=True)


@pytest.fixture(scope='session')
def repo_root():
    return REPO


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """An image folder ``train/<class>/*.jpg``, ``test/<class>/*.jpg``: 4 classes x 16 images of 32x32."""
    from tools.make_tiny_dataset import make_tiny_dataset
    return make_tiny_dataset(str(tmp_path_factory.mktemp('tiny_data')))
