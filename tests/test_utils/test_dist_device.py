"""Distributed start-up: no process group on a GPU machine where torch cannot use CUDA (a fake ``nvidia-smi`` first on
PATH), gloo with ``MMSIMCLR_DEVICE=cpu``, slurm's rendezvous on the first node with a job-id port, and data-loader
workers that fit the CPUs of a rank."""
import os
import socket
import stat

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

from mmsimclr.utils import device_probe
from mmsimclr.utils.dist import DeviceError, check_device, fit_loader_workers, init_cpu_dist_if_needed

RANK_VARS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'CUDA_VISIBLE_DEVICES',
             'MMSIMCLR_DEVICE', 'LOCAL_WORLD_SIZE')
SLURM_VARS = ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID', 'SLURM_NODELIST', 'SLURM_STEP_NODELIST',
              'SLURM_JOB_NODELIST', 'SLURM_NNODES', 'SLURM_JOB_ID', 'SLURM_CPUS_PER_TASK', 'SLURM_JOB_GRES',
              'SLURM_GPUS_ON_NODE', 'SLURM_JOB_GPUS', 'SLURM_STEP_GPUS', 'SLURM_GPUS', 'SLURM_GPUS_PER_NODE',
              'SLURM_GPUS_PER_TASK', 'SLURM_STEP_GRES', 'SLURM_GRES', 'SLURM_TRES_PER_TASK', 'SLURM_TRES_PER_NODE')


@pytest.fixture(autouse=True)
def _restore_cuda_visible_devices():
    """check_device('...') with MMSIMCLR_DEVICE=cpu empties CUDA_VISIBLE_DEVICES in os.environ itself, which
    monkeypatch.delenv of an unset variable does not undo: put back what was there (else later tests in this process,
    e.g. the launch scripts', see a machine whose GPUs are all hidden)."""
    saved = os.environ.get('CUDA_VISIBLE_DEVICES')
    yield
    if saved is None:
        os.environ.pop('CUDA_VISIBLE_DEVICES', None)
    else:
        os.environ['CUDA_VISIBLE_DEVICES'] = saved


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A clean launch environment, torch without usable CUDA, no device nodes and no nvidia-smi / scontrol;
    ``machine(gpus=n)`` puts an ``nvidia-smi`` listing n GPUs first on PATH."""
    for name in RANK_VARS + SLURM_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    (tmp_path / 'dev').mkdir()
    monkeypatch.setattr(device_probe, 'DEV_DIR', str(tmp_path / 'dev'))
    monkeypatch.setattr(device_probe, 'SCONTROL', 'mmsimclr-no-such-scontrol')
    started = []
    monkeypatch.setattr(dist, 'init_process_group', lambda *a, **kw: started.append(
        dict(kw, MASTER_ADDR=os.environ.get('MASTER_ADDR'),
             MASTER_PORT=os.environ.get('MASTER_PORT'))))

    def with_gpus(gpus):
        folder = tmp_path / 'bin'
        folder.mkdir()
        smi = folder / 'nvidia-smi'
        smi.write_text('#!/bin/sh\nif [ "$1" = "-L" ]; then\n' + ''.join(
            f'echo "GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i})"\n' for i in range(gpus)) +
            'exit 0\nfi\necho "| NVIDIA-SMI 470.82.01    Driver Version: 470.82.01    CUDA Version: 11.4     |"\n')
        smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv('PATH', f'{folder}:' + os.environ['PATH'])
    with_gpus.started = started
    return with_gpus


def _torchrun_env(monkeypatch, port=29999):
    for k, v in dict(RANK='0', WORLD_SIZE='2', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port)).items():
        monkeypatch.setenv(k, v)


def test_gpu_machine_without_cuda_stops_before_any_process_group(machine, monkeypatch):
    machine(gpus=8)
    _torchrun_env(monkeypatch)
    with pytest.raises(DeviceError) as e:
        init_cpu_dist_if_needed('pytorch', timeout_s=5)
    assert str(e.value).startswith('this machine has NVIDIA GPUs (nvidia-smi -L lists 8 GPU(s) (GPU 0: NVIDIA H100')
    assert 'would silently train on CPU processes (gloo)' in str(e.value)
    assert 'MMSIMCLR_DEVICE=cpu' in str(e.value)
    assert machine.started == [] and not dist.is_initialized()


def test_slurm_job_with_gres_but_no_cuda_stops(machine, monkeypatch):
    for k, v in dict(SLURM_PROCID='3', SLURM_NTASKS='16', SLURM_NODELIST='gpu[01-02]', SLURM_JOB_ID='77',
                     SLURM_JOB_GRES='gpu:8').items():
        monkeypatch.setenv(k, v)
    with pytest.raises(DeviceError, match=r'the slurm job asked for GPUs \(SLURM_JOB_GRES=gpu:8\)'):
        init_cpu_dist_if_needed('slurm', timeout_s=5)
    assert machine.started == []


def test_explicit_cpu_on_a_gpu_machine_starts_gloo_with_gpus_hidden(machine, monkeypatch):
    machine(gpus=8)
    port = device_probe.free_port()
    for k, v in dict(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                     MMSIMCLR_DEVICE='cpu').items():
        monkeypatch.setenv(k, v)
    assert check_device('pytorch') == 'cpu'
    assert os.environ['CUDA_VISIBLE_DEVICES'] == ''
    assert init_cpu_dist_if_needed('pytorch', timeout_s=5)
    assert machine.started == [dict(backend='gloo', timeout=machine.started[0]['timeout'], MASTER_ADDR='127.0.0.1',
                                    MASTER_PORT=str(port))]


def test_laptop_without_gpus_keeps_gloo_by_default(machine, monkeypatch):
    _torchrun_env(monkeypatch, port=29876)
    assert check_device('pytorch') == 'cpu'
    assert init_cpu_dist_if_needed('pytorch', timeout_s=5)
    assert [s['backend'] for s in machine.started] == ['gloo']


def test_cuda_asked_for_but_unusable(machine, monkeypatch):
    monkeypatch.setenv('MMSIMCLR_DEVICE', 'cuda')
    with pytest.raises(DeviceError, match='MMSIMCLR_DEVICE=cuda, but torch cannot use CUDA'):
        check_device('none')


def test_single_process_goes_on_on_the_cpu_but_says_why(machine, capsys):
    machine(gpus=1)
    assert check_device('none') == 'cpu'
    err = capsys.readouterr().err
    assert err.startswith('mmsimclr: warning: this machine has NVIDIA GPUs') and 'but torch cannot use CUDA, so this ' \
        'process trains on the CPU' in err
    assert 'MMSIMCLR_DEVICE=cpu' in err


def test_slurm_cpu_job_meets_on_its_first_node_never_localhost(machine, monkeypatch):
    for k, v in dict(SLURM_PROCID='5', SLURM_NTASKS='8', SLURM_LOCALID='1', SLURM_NODELIST='cn[007-010]',
                     SLURM_NNODES='4', SLURM_JOB_ID='4242').items():
        monkeypatch.setenv(k, v)
    assert init_cpu_dist_if_needed('slurm', timeout_s=5)
    assert machine.started[0]['MASTER_ADDR'] == 'cn007' and machine.started[0]['MASTER_PORT'] == '24242'
    env = os.environ
    assert (env['RANK'], env['WORLD_SIZE'], env['LOCAL_RANK']) == ('5', '8', '1')


def test_slurm_port_from_the_script_wins(machine, monkeypatch):
    for k, v in dict(SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_NODELIST='solo', SLURM_JOB_ID='4242',
                     MASTER_PORT='31000').items():
        monkeypatch.setenv(k, v)
    assert init_cpu_dist_if_needed('slurm', timeout_s=5)
    assert (machine.started[0]['MASTER_ADDR'], machine.started[0]['MASTER_PORT']) == ('solo', '31000')


def test_multi_node_slurm_without_nodelist_is_an_error(machine, monkeypatch):
    for k, v in dict(SLURM_PROCID='0', SLURM_NTASKS='16', SLURM_NNODES='2').items():
        monkeypatch.setenv(k, v)
    with pytest.raises(RuntimeError, match='without SLURM_NODELIST: set MASTER_ADDR'):
        init_cpu_dist_if_needed('slurm', timeout_s=5)
    assert machine.started == []


def test_real_gloo_group_with_explicit_cpu(monkeypatch):
    """The path the launch scripts take with MMSIMCLR_DEVICE=cpu, with a real (one-rank) gloo group on a free port
    (CUDA_VISIBLE_DEVICES, which check_device empties, is restored by the module's autouse fixture)."""
    for name in RANK_VARS:
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    for k, v in dict(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                     MMSIMCLR_DEVICE='cpu').items():
        monkeypatch.setenv(k, v)
    try:
        assert init_cpu_dist_if_needed('pytorch', timeout_s=30)
        assert dist.get_backend() == 'gloo' and dist.get_world_size() == 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


# ------------------------------------------------------------------------------------------ data-loader workers
def _cfg():
    return Config(dict(train_dataloader=dict(batch_size=256, num_workers=8), val_dataloader=dict(num_workers=2),
                       test_dataloader=None, custom_hooks=[dict(type='KNNMonitorHook', num_workers=8),
                                                           dict(type='EMAHook')]))


def test_workers_lowered_to_the_cpus_of_a_rank():
    cfg = _cfg()
    note = fit_loader_workers(cfg, cpus=5)
    assert (cfg.train_dataloader.num_workers, cfg.val_dataloader.num_workers) == (5, 2)
    assert cfg.custom_hooks[0].num_workers == 5 and 'num_workers' not in cfg.custom_hooks[1]
    assert note.startswith('this process has 5 CPU(s)')
    assert 'train_dataloader.num_workers 8 -> 5; custom_hooks.0.num_workers 8 -> 5.' in note
    assert fit_loader_workers(cfg, cpus=5) is None  # nothing left to lower: no second warning


def test_workers_from_slurm_cpus_per_task(monkeypatch):
    monkeypatch.setenv('SLURM_CPUS_PER_TASK', '3')
    cfg = _cfg()
    assert 'this process has 3 CPU(s)' in fit_loader_workers(cfg)
    assert cfg.train_dataloader.num_workers == 3


def test_workers_set_explicitly_are_kept():
    cfg = _cfg()
    note = fit_loader_workers(cfg, cpus=1, keep={'train_dataloader'})
    assert cfg.train_dataloader.num_workers == 8 and cfg.val_dataloader.num_workers == 1
    assert 'train_dataloader' not in note


def test_enough_cpus_change_nothing():
    cfg = _cfg()
    assert fit_loader_workers(cfg, cpus=64) is None
    assert cfg.train_dataloader.num_workers == 8
