"""mmsimclr installs with ``pip install -e .``; metadata lives in setup.cfg.

mmcv comes in two distributions that both provide the ``mmcv`` package: mmcv-lite (pure Python, all mmsimclr needs)
and full mmcv (compiled ops). Installing mmcv-lite on top of a full mmcv would overwrite it, so mmcv-lite is only
required when no full mmcv is installed.
"""
from importlib import metadata

from setuptools import setup


def _mmcv_requirement():
    try:
        version = metadata.version('mmcv')
    except metadata.PackageNotFoundError:
        return ['mmcv-lite==2.2.0']
    return [f'mmcv=={version}']


setup(install_requires=[
    'torch>=2.0', 'torchvision', 'mmengine==0.10.7', 'mmpretrain==1.2.0', 'numpy', 'opencv-python', 'pillow'
] + _mmcv_requirement())
