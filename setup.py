"""mmsimclr installs with ``pip install -e .``; metadata lives in setup.cfg.

mmcv comes in two distributions that both provide the ``mmcv`` package: mmcv-lite (pure Python, all mmsimclr needs)
and full mmcv (compiled ops). Installing mmcv-lite on top of a full mmcv would overwrite it, so mmcv-lite is only
required when no full mmcv is installed.
"""
import os
import os.path as osp
import shutil
import sys
from importlib import metadata

from setuptools import setup

HERE = osp.dirname(osp.abspath(__file__))


def _mmcv_requirement():
    try:
        version = metadata.version('mmcv')
    except metadata.PackageNotFoundError:
        return ['mmcv-lite==2.2.0']
    return [f'mmcv=={version}']


def _add_mim_resources():
    """Ship configs/ and model_zoo.yml inside the package (mmsimclr/.mim) for non-editable installs, so that
    ``get_model('<zoo name>')`` finds them without the source tree (an editable install reads them in place)."""
    target = osp.join(HERE, 'mmsimclr', '.mim')
    if any('develop' in a or 'editable' in a for a in sys.argv):
        return
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    shutil.copytree(osp.join(HERE, 'configs'), osp.join(target, 'configs'))
    shutil.copy(osp.join(HERE, 'model_zoo.yml'), target)


_add_mim_resources()
setup(package_data={'mmsimclr': ['.mim/model_zoo.yml', '.mim/configs/*.py', '.mim/configs/*/*.py',
                                 '.mim/configs/*/*/*.py']},
      install_requires=[
    'torch>=2.0', 'torchvision', 'mmengine==0.10.7', 'mmpretrain==1.2.0', 'numpy', 'opencv-python', 'pillow'
] + _mmcv_requirement())
