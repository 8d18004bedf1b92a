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


#: What ``mmsimclr/.mim`` holds, as OpenMMLab's ``mim`` expects it (``mim search``: ``.mim/model-index.yml``;
#: ``mim train`` / ``mim test``: ``.mim/tools/{train,test}.py``; ``mim download``: ``.mim/<Config of the metafile>``).
#: ``model-index.yml`` only imports ``model_zoo.yml``, the one metafile.
MIM_RESOURCES = ('configs', 'tools', 'model_zoo.yml', 'model-index.yml')


def _is_editable(argv):
    """``pip install -e .`` runs setup.py with ``editable_wheel`` (PEP 660); older tools run ``develop``."""
    return any('develop' in a or 'editable' in a for a in argv)


def add_mim_resources(root=HERE, editable=None):
    """Fill ``<root>/mmsimclr/.mim`` with MIM_RESOURCES from ``root``.

    Regular install: copies, shipped in the package (so ``get_model('<zoo name>')``, the tools' config names and
    ``mim`` work without the source tree). Editable install: relative symbolic links to the checkout's files, so
    nothing is duplicated and edits show at once (copies where the file system refuses links).
    """
    editable = _is_editable(sys.argv) if editable is None else editable
    target = osp.join(root, 'mmsimclr', '.mim')
    if osp.islink(target):
        os.remove(target)
    shutil.rmtree(target, ignore_errors=True)  # links inside are removed, never what they point to
    os.makedirs(target)
    for name in MIM_RESOURCES:
        source, dest = osp.join(root, name), osp.join(target, name)
        if editable:
            try:
                os.symlink(osp.relpath(source, target), dest, target_is_directory=osp.isdir(source))
                continue
            except OSError:  # e.g. Windows without the privilege to create links
                pass
        if osp.isdir(source):
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copy(source, dest)


if __name__ == '__main__':  # setuptools' build backend runs this file as __main__; tests import the helpers
    add_mim_resources()
    setup(package_data={'mmsimclr': ['.mim/model_zoo.yml', '.mim/model-index.yml', '.mim/configs/*.py',
                                     '.mim/configs/*/*.py', '.mim/configs/*/*/*.py', '.mim/tools/*.py',
                                     '.mim/tools/*.sh', '.mim/tools/*/*.py']},
          install_requires=[
        'torch>=2.0', 'torchvision', 'mmengine==0.10.7', 'mmpretrain==1.2.0', 'numpy', 'opencv-python', 'pillow',
        'google-crc32c>=1.5',  # the TF checkpoint reader checks every tensor's crc32c (mmsimclr/utils/tf_checkpoint.py)
    ] + _mmcv_requirement())
