"""OpenMMLab's ``mim`` drives mmsimclr: ``mim search``, ``mim train``, ``mim test`` and ``mim download``.

mim (openmim 0.3.9) finds a package through ``pkg_resources``: its folder is ``<distribution location>/mmsimclr``,
where it reads ``.mim/model-index.yml`` (search, download), ``.mim/tools/{train,test}.py`` and ``.mim/configs``
(train, test, download). setup.py fills ``mmsimclr/.mim`` with copies for a regular install and with links into the
checkout for an editable one. Both are made here from a copy of the sources (the shared checkout is left alone):
a regular install with ``pip install --target`` and an editable build with setup.py's ``egg_info editable_wheel``
(the ``mmsimclr.egg-info`` it leaves in the copy is what mim finds when the checkout comes first on ``sys.path``).
mim runs as its users run it, ``python -m mim ...`` in a subprocess, with the install first on ``PYTHONPATH``.
"""
import importlib.util
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import pytest
import torch
import yaml

from mmsimclr.models.backbones.simclrv2_arch import SIMCLRV2_ARCHS
from .conftest import REPO

pytestmark = pytest.mark.shared_setup  # one worker makes the module fixture once

if importlib.util.find_spec('mim') is None:
    pytest.skip('openmim is not installed (pip install openmim==0.3.9, listed in requirements/tests.txt)',
                allow_module_level=True)

SOURCES = ('setup.py', 'setup.cfg', 'README.md', 'model_zoo.yml', 'model-index.yml', 'mmsimclr', 'configs', 'tools')
OFFICIAL = 'https://download.openmmlab.com/'
TINY = 'simclr_r18_1xb16-coslr-2e_tiny.py'
LINEAR = 'resnet18_simclr-cifar-pre_1xb512-linear-coslr-100e_cifar10.py'
ZOO_NAMES = ['simclr_resnet50_16xb256-coslr-200e_in1k', 'simclr_resnet50_16xb256-coslr-800e_in1k',
             'resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k',
             'resnet50_simclr-800e-pre_8xb512-linear-coslr-90e_in1k',
             'resnet50-1x_simclr-tf-pre_8xb512-linear-coslr-90e_in1k',
             'resnet50-2x_simclr-tf-pre_8xb512-linear-coslr-90e_in1k',
             'resnet50-4x_simclr-tf-pre_8xb512-linear-coslr-90e_in1k']
# SimCLRv2's published TF models: per architecture the pretrained one, then its 1% / 10% / 100% fine-tuned ones
ZOO_NAMES += [f'resnet{a.depth}-{a.width}x-sk{int(a.sk)}_simclrv2-{kind}_in1k' for a in SIMCLRV2_ARCHS
              for kind in ('pre_linear', 'finetune-1pct', 'finetune-10pct', 'finetune-100pct')]


def _copy_sources(dest):
    skip = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim', '*.egg-info')
    for name in SOURCES:
        src = osp.join(REPO, name)
        if osp.isdir(src):
            shutil.copytree(src, osp.join(dest, name), ignore=skip)
        else:
            shutil.copy(src, dest)


def _run(cmd, cwd, timeout=300, **env):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **env))
    assert proc.returncode == 0, f'{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    return proc.stdout


def _mim(args, site, cwd, timeout=300):
    """``python -m mim ARGS`` with ``site`` first on the import path, run in ``cwd`` (no stray egg-info there)."""
    path = os.pathsep.join(p for p in (str(site), os.environ.get('PYTHONPATH')) if p)
    return _run([sys.executable, '-m', 'mim'] + args, cwd, timeout, PYTHONPATH=path)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='session')
def installed(tmp_path_factory):
    """A regular (non-editable) install of mmsimclr into a folder of its own; returns that folder."""
    src, site = tmp_path_factory.mktemp('mim_src'), tmp_path_factory.mktemp('mim_site')
    _copy_sources(src)
    _run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation', '--no-index',
          '--disable-pip-version-check', '--target', str(site), str(src)], cwd=str(src))
    return site


@pytest.fixture(scope='session')
def editable(tmp_path_factory):
    """A checkout copy built as ``pip install -e .`` builds it; returns the checkout."""
    checkout = tmp_path_factory.mktemp('mim_checkout')
    _copy_sources(checkout)
    _run([sys.executable, 'setup.py', '-q', 'egg_info', 'editable_wheel', '--dist-dir',
          str(tmp_path_factory.mktemp('mim_wheel'))], cwd=str(checkout))
    return checkout


def test_model_index_imports_the_one_metafile():
    """The root model-index.yml adds nothing of its own: it imports model_zoo.yml, and mim's reader (modelindex)
    sees the same models, configs and weights as mmsimclr.apis."""
    from modelindex.load_model_index import load

    from mmsimclr.apis.model_zoo import load_zoo_file
    with open(osp.join(REPO, 'model-index.yml')) as f:
        assert yaml.safe_load(f) == {'Import': ['model_zoo.yml']}
    index = load(osp.join(REPO, 'model-index.yml'))
    ours = load_zoo_file(osp.join(REPO, 'model_zoo.yml'))
    assert [m.name for m in index.models] == list(ours) == ZOO_NAMES
    for model in index.models:
        assert osp.normpath(osp.join(REPO, model.config)) == ours[model.name].config
        assert osp.isfile(osp.join(REPO, model.config))
        assert model.weights == ours[model.name].weights


def test_installed_package_ships_the_mim_folder(installed):
    mim_dir = installed / 'mmsimclr' / '.mim'
    for name in ('model_zoo.yml', 'model-index.yml', 'tools/train.py', 'tools/test.py', f'configs/{TINY}',
                 f'configs/benchmarks/{LINEAR}', 'configs/_base_/default_runtime.py'):
        assert (mim_dir / name).is_file(), name
        assert (mim_dir / name).read_bytes() == open(osp.join(REPO, name), 'rb').read(), name


def test_editable_mim_folder_links_into_the_checkout(editable):
    mim_dir = editable / 'mmsimclr' / '.mim'
    for name in ('model_zoo.yml', 'model-index.yml', 'tools', 'configs'):
        assert (mim_dir / name).is_symlink(), name  # nothing duplicated: mim reads the checkout's own files
        assert osp.samefile(mim_dir / name, editable / name)


@pytest.mark.parametrize('install', ['installed', 'editable'])
def test_mim_search_lists_the_model_zoo(install, request, tmp_path):
    out = _mim(['search', 'mmsimclr', '--field', 'weight', 'config'], request.getfixturevalue(install), tmp_path)
    for name in ZOO_NAMES:
        assert f'config id: {name}' in out
    assert out.count('config id:') == len(ZOO_NAMES)
    assert 'configs/simclr_r50_16xb256-coslr-200e_in1k.py' in out


def _tiny_options(tiny_data, images):
    return ['--cfg-options', f'train_dataloader.dataset.data_root={tiny_data}',
            f'train_dataloader.dataset.indices={images}', 'train_cfg.max_epochs=1']


def _assert_simclr_checkpoint(path, iters):
    """A checkpoint of the tiny SimCLR model after ``iters`` optimizer steps of epoch 1."""
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == iters
    assert ckpt['state_dict']['backbone.conv1.weight'].shape == (8, 3, 3, 3)  # the tiny config's 1/8 width
    assert ckpt['state_dict']['neck.fc1.weight'].shape[0] == 32
    assert ckpt['optimizer']['state']  # LARS momentum buffers exist: a step was taken


def test_mim_train_on_cpu_writes_a_checkpoint(installed, tiny_data, tmp_path):
    """``mim train mmsimclr <config file name> --gpus 0``: mim finds the config in .mim/configs and runs
    .mim/tools/train.py (mim 0.3.9 adds ``--device cpu`` only for scripts that have ``--gpus``; ours trains on
    whatever mmengine picks, the CPU here)."""
    work = tmp_path / 'work'
    out = _mim(['train', 'mmsimclr', TINY, '--gpus', '0', '--work-dir', str(work)] + _tiny_options(tiny_data, 16),
               installed, tmp_path)
    assert str(installed / 'mmsimclr' / '.mim' / 'tools' / 'train.py') in out
    assert 'Training finished successfully' in out
    _assert_simclr_checkpoint(work / 'epoch_1.pth', iters=1)


@pytest.mark.slow
@pytest.mark.distributed
def test_mim_train_pytorch_launcher_two_cpu_processes(installed, tiny_data, tmp_path):
    """``--launcher pytorch --gpus 2``: mim starts ``torch.distributed.launch --nproc_per_node=2``; without CUDA
    tools/train.py joins the two processes over gloo. 32 images, 16 per step on each rank: one step."""
    work = tmp_path / 'work'
    out = _mim(['train', 'mmsimclr', TINY, '--gpus', '2', '--launcher', 'pytorch', '--port', str(_free_port()),
                '--work-dir', str(work)] + _tiny_options(tiny_data, 32), installed, tmp_path)
    assert 'torch.distributed.launch --nproc_per_node=2' in out
    log = next(work.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log  # mmengine's count of processes
    _assert_simclr_checkpoint(work / 'epoch_1.pth', iters=1)


def test_mim_train_slurm_launcher_builds_the_srun_command(installed, tmp_path):
    """``--launcher slurm``: there is no Slurm here, so an ``srun`` first on PATH records what mim asks of it: the
    job geometry, then our installed tools/train.py with the packaged config and ``--launcher slurm``.
    (``--srun-args`` is given: with click >= 8.3 an omitted one reaches mim 0.3.9 as click's UNSET sentinel, which
    mim then fails to split.)"""
    bin_dir, record = tmp_path / 'bin', tmp_path / 'srun_args.txt'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    (bin_dir / 'srun').chmod(0o755)
    path = os.pathsep.join(p for p in (str(installed), os.environ.get('PYTHONPATH')) if p)
    _run([sys.executable, '-m', 'mim', 'train', 'mmsimclr', TINY, '--launcher', 'slurm', '--gpus', '16',
          '--gpus-per-node', '8', '--partition', 'part', '--srun-args', '--job-name=simclr_tiny',
          '--work-dir', str(tmp_path / 'work')],
         str(tmp_path), PYTHONPATH=path, PATH=os.pathsep.join([str(bin_dir), os.environ['PATH']]))
    args = record.read_text().splitlines()
    mim_dir = installed / 'mmsimclr' / '.mim'
    for expected in ('part', '--gres=gpu:8', '--job-name=simclr_tiny', '--ntasks=16', '--ntasks-per-node=8',
                     sys.executable, str(mim_dir / 'tools' / 'train.py'), str(mim_dir / 'configs' / TINY)):
        assert expected in args, (expected, args)
    assert args[args.index('--launcher') + 1] == 'slurm'
    assert args.index(str(mim_dir / 'tools' / 'train.py')) + 1 == args.index(str(mim_dir / 'configs' / TINY))


def test_mim_test_evaluates_a_checkpoint(installed, tiny_data, tmp_path):
    """``mim test mmsimclr <linear config> --checkpoint CKPT``: a classifier whose head always answers class 2 scores
    exactly 25% top-1 on the 4 balanced tiny classes."""
    from mmengine.config import Config

    from mmsimclr.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'benchmarks', LINEAR))
    cfg.model.backbone.init_cfg = None
    cfg.model.head.num_classes = 4
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        model.head.fc.weight.zero_()
        model.head.fc.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0]))
    ckpt, metrics = tmp_path / 'linear.pth', tmp_path / 'metrics.json'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    out = _mim(['test', 'mmsimclr', LINEAR, '--checkpoint', str(ckpt), '--work-dir', str(tmp_path / 'w'),
                '--out', str(metrics), '--cfg-options', f'test_dataloader.dataset.data_root={tiny_data}',
                'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
                'test_dataloader.batch_size=64', 'model.head.num_classes=4', 'model.backbone.init_cfg=None'],
               installed, tmp_path)
    assert str(installed / 'mmsimclr' / '.mim' / 'tools' / 'test.py') in out
    assert yaml.safe_load(metrics.read_text())['accuracy/top1'] == 25.0


def test_mim_download_fetches_the_metafile_weights(installed, server, tmp_path):
    """``mim download mmsimclr --config NAME --dest DIR`` fetches the ``Weights`` URL of NAME and dumps its config.
    The test runs on a copy of the install whose metafile points at a local server instead of
    download.openmmlab.com (the real metafile is untouched); mim itself has no mirror setting."""
    site = tmp_path / 'site'
    shutil.copytree(installed, site)
    zoo = site / 'mmsimclr' / '.mim' / 'model_zoo.yml'
    zoo.write_text(zoo.read_text().replace(OFFICIAL, server.base))
    name = 'simclr_resnet50_16xb256-coslr-200e_in1k'
    url = {m['Name']: m['Weights'] for m in yaml.safe_load(open(osp.join(REPO, 'model_zoo.yml')))['Models']}[name]
    data = os.urandom(100_000)
    server.add(url[len(OFFICIAL):], data)
    dest = tmp_path / 'dest'
    _mim(['download', 'mmsimclr', '--config', name, '--dest', str(dest)], site, tmp_path)
    assert (dest / osp.basename(url)).read_bytes() == data
    assert server.count(url[len(OFFICIAL):]) == 1
    from mmengine.config import Config
    cfg = Config.fromfile(str(dest / f'{name}.py'))  # the config of that model, dumped next to the weights
    assert cfg.model.type.endswith('SimCLR') and cfg.train_cfg.max_epochs == 200
