"""The launch probe: GPUs expected (fake device nodes, a fake ``nvidia-smi`` on PATH, slurm variables) but torch
without CUDA -> an error naming the likely cause; nothing expected -> CPU; node lists, ports, CPUs per rank."""
import os

import pytest
import torch

from mmsimclr.utils import device_probe as probe
from mmsimclr.utils.device_probe import DeviceError
from tests.executables import write_exe

SMI_HEADER = ('+-----------------------------------------------------------------------------+\n'
              '| NVIDIA-SMI 470.182.03   Driver Version: 470.182.03   CUDA Version: {cuda}     |\n'
              '|-------------------------------+----------------------+----------------------+\n')


@pytest.fixture
def fake_smi(tmp_path):
    """A folder with an ``nvidia-smi`` that lists ``gpus`` GPUs and reports a driver for CUDA ``cuda``."""
    def make(gpus=2, cuda='11.4', fail=None):
        folder = tmp_path / 'bin'
        folder.mkdir(exist_ok=True)
        if fail:
            body = f'echo "{fail}"; exit 9\n'
        else:
            lines = ''.join(f'echo "GPU {i}: NVIDIA A100-SXM4-80GB (UUID: GPU-{i}aaa)"\n' for i in range(gpus))
            body = f'if [ "$1" = "-L" ]; then\n{lines}exit 0\nfi\ncat <<"EOF"\n{SMI_HEADER.format(cuda=cuda)}EOF\n'
        return write_exe(folder / 'nvidia-smi', '#!/bin/sh\n' + body)
    return make


@pytest.fixture
def dev_dir(tmp_path):
    """An empty stand-in for /dev; ``add_gpus(n)`` creates nvidia0.. plus the non-GPU nodes nvidiactl, nvidia-uvm."""
    folder = tmp_path / 'dev'
    folder.mkdir()

    def add_gpus(n):
        for name in [f'nvidia{i}' for i in range(n)] + ['nvidiactl', 'nvidia-uvm']:
            (folder / name).touch()
        return str(folder)
    add_gpus.path = str(folder)
    return add_gpus


NO_SMI = 'mmsimclr-no-such-nvidia-smi'


@pytest.fixture(autouse=True)
def cuda_unusable(monkeypatch):
    """torch cannot use CUDA, as on the machines these tests simulate (also when the suite runs on a GPU machine)."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)


def test_no_gpus_anywhere_is_cpu_without_error(dev_dir):
    assert probe.cuda_problem({}, dev_dir=dev_dir.path, nvidia_smi=NO_SMI) is None
    assert probe.gpu_evidence({}, dev_dir=dev_dir.path, nvidia_smi=NO_SMI) == dict(nodes=[], smi=[], smi_error=None,
                                                                                     slurm=None)


def test_device_nodes_and_torch_without_cuda(dev_dir, monkeypatch):
    monkeypatch.setattr(torch.version, 'cuda', None)
    message = probe.cuda_problem({}, dev_dir=dev_dir(2), nvidia_smi=NO_SMI)
    assert message.startswith(f'this machine has NVIDIA GPUs (device nodes {dev_dir.path}/nvidia0, '
                              f'{dev_dir.path}/nvidia1), but torch cannot use CUDA')
    assert 'nvidiactl' not in message and 'nvidia-uvm' not in message
    assert f'this torch ({torch.__version__}) is built without CUDA' in message
    assert message.endswith('To train on the CPU on purpose, set MMSIMCLR_DEVICE=cpu.')


def test_old_driver_named_with_both_versions(dev_dir, fake_smi, monkeypatch):
    monkeypatch.setattr(torch.version, 'cuda', '13.0')
    message = probe.cuda_problem({}, dev_dir=dev_dir.path, nvidia_smi=fake_smi(gpus=2, cuda='11.4'))
    assert 'nvidia-smi -L lists 2 GPU(s) (GPU 0: NVIDIA A100-SXM4-80GB' in message
    assert ('the NVIDIA driver is too old for this torch: torch ' in message
            and 'is built for CUDA 13.0, the driver supports CUDA up to 11.4 (nvidia-smi)' in message)
    assert 'built without CUDA' not in message
    # a driver new enough is not blamed
    message = probe.cuda_problem({}, dev_dir=dev_dir.path, nvidia_smi=fake_smi(gpus=2, cuda='13.1'))
    assert 'too old' not in message and 'Likely cause: not found by mmsimclr' in message


def test_failing_nvidia_smi_with_device_nodes(dev_dir, fake_smi):
    smi = fake_smi(fail="NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
    message = probe.cuda_problem({}, dev_dir=dev_dir(1), nvidia_smi=smi)
    assert "nvidia-smi fails (NVIDIA-SMI has failed because it couldn't communicate" in message


@pytest.mark.parametrize('visible, expected', [
    ('', 'CUDA_VISIBLE_DEVICES is set but empty, which hides every GPU'),
    ('NoDevFiles', "CUDA_VISIBLE_DEVICES='NoDevFiles' names no GPU"),
    ('-1', "CUDA_VISIBLE_DEVICES='-1' names no GPU"),
    ('5,1', "CUDA_VISIBLE_DEVICES='5,1' names GPU 5, but this machine has 2 (0..1)"),
])
def test_visible_devices_that_hide_the_gpus(visible, expected, dev_dir, fake_smi):
    message = probe.cuda_problem({'CUDA_VISIBLE_DEVICES': visible}, dev_dir=dev_dir.path, nvidia_smi=fake_smi(gpus=2))
    assert expected in message and 'unset it, or list the GPUs to use' in message


@pytest.mark.parametrize('visible', ['0', '1,0', 'GPU-0aaa', 'MIG-1'])
def test_valid_visible_devices_are_not_blamed(visible):
    assert probe.visible_devices_problem(visible, num_gpus=2) is None


def test_slurm_job_without_gpus_on_a_gpu_node(dev_dir):
    message = probe.cuda_problem({'SLURM_JOB_ID': '42'}, dev_dir=dev_dir(8), nvidia_smi=NO_SMI, launcher='slurm')
    assert 'this slurm job was given no GPUs' in message and '--gres=gpu:N' in message


@pytest.mark.parametrize('env, named', [
    ({'SLURM_JOB_GRES': 'gpu:8'}, 'SLURM_JOB_GRES=gpu:8'),
    ({'SLURM_GPUS_ON_NODE': '0', 'SLURM_STEP_GPUS': '0,1'}, 'SLURM_STEP_GPUS=0,1'),
    ({'SLURM_TRES_PER_TASK': 'cpu=5,gres/gpu:1'}, 'SLURM_TRES_PER_TASK=cpu=5,gres/gpu:1'),
])
def test_slurm_gpu_request_without_gpus_on_the_node(env, named, dev_dir):
    """The job asked for GPUs (an allocation that landed on a node without them, or cgroups that hide them)."""
    message = probe.cuda_problem(dict(env, SLURM_JOB_ID='7'), dev_dir=dev_dir.path, nvidia_smi=NO_SMI,
                                 launcher='slurm')
    assert f'the slurm job asked for GPUs ({named})' in message
    assert 'was given no GPUs' not in message


@pytest.mark.parametrize('env', [{'SLURM_GPUS_ON_NODE': '0'}, {'SLURM_JOB_GRES': 'gpu:0'}, {'SLURM_JOB_GRES': ''}])
def test_no_slurm_gpu_request(env):
    assert probe.slurm_gpu_request(env) is None


def test_explicit_cpu_and_cuda(dev_dir, fake_smi):
    gpus = dev_dir(2)
    assert probe.cuda_problem({'MMSIMCLR_DEVICE': 'cpu'}, dev_dir=gpus, nvidia_smi=fake_smi()) is None
    assert probe.cuda_problem({'MMSIMCLR_DEVICE': 'CPU '}, dev_dir=gpus, nvidia_smi=fake_smi()) is None
    message = probe.cuda_problem({'MMSIMCLR_DEVICE': 'cuda'}, dev_dir=str(dev_dir.path) + '/none', nvidia_smi=NO_SMI)
    assert message.startswith('MMSIMCLR_DEVICE=cuda, but torch cannot use CUDA. Likely cause:')
    with pytest.raises(DeviceError, match=r"MMSIMCLR_DEVICE='gpu' is not one of auto, cpu, cuda"):
        probe.cuda_problem({'MMSIMCLR_DEVICE': 'gpu'})


def test_usable_cuda_is_no_problem(dev_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert probe.cuda_problem({}, dev_dir=dev_dir(8), nvidia_smi=NO_SMI) is None


def test_check_command_exit_status_and_message(dev_dir, fake_smi, monkeypatch, capsys):
    monkeypatch.setattr(probe, 'DEV_DIR', dev_dir.path)
    monkeypatch.setattr(probe, 'NVIDIA_SMI', fake_smi(gpus=4, cuda='11.4'))
    monkeypatch.delenv('MMSIMCLR_DEVICE', raising=False)
    assert probe.main(['check']) == 1
    assert capsys.readouterr().err.startswith('mmsimclr: this machine has NVIDIA GPUs (nvidia-smi -L lists 4 GPU(s)')
    monkeypatch.setenv('MMSIMCLR_DEVICE', 'cpu')
    assert probe.main(['check']) == 0


@pytest.mark.parametrize('nodelist, first', [
    ('node7', 'node7'), ('node[03-06]', 'node03'), ('node[10,2-4]', 'node10'), ('gpu-a,gpu-b', 'gpu-a'),
    ('rack[2-3]-n[01-08],login1', 'rack2-n01'), ('big[001-128]', 'big001'),
])
def test_first_hostname_without_scontrol(nodelist, first):
    assert probe.first_hostname(nodelist, scontrol='mmsimclr-no-such-scontrol') == first


def test_first_hostname_asks_scontrol_when_installed(tmp_path):
    scontrol = write_exe(tmp_path / 'scontrol', '#!/bin/sh\n[ "$1 $2" = "show hostnames" ] || exit 3\n'
                         'echo "expanded-$3-a"; echo "expanded-$3-b"\n')
    assert probe.first_hostname('n[1-2]', scontrol=scontrol) == 'expanded-n[1-2]-a'


def test_unreadable_nodelist_says_set_master_addr():
    with pytest.raises(ValueError, match='set MASTER_ADDR to the first node'):
        probe.first_hostname('node[1-2', scontrol='mmsimclr-no-such-scontrol')


def test_slurm_port_same_for_a_job_different_between_jobs():
    assert probe.slurm_port('123456') == probe.slurm_port('123456') == 23456
    assert probe.slurm_port('123457') != probe.slurm_port('123456')
    assert all(20000 <= probe.slurm_port(str(j)) < 30000 for j in (0, 9999, 10000, 987654321))
    assert probe.slurm_port(None) == 29500


def test_free_port_can_be_bound():
    import socket
    port = probe.free_port()
    with socket.socket() as s:
        s.bind(('', port))  # free right after the probe closed it
    assert port != 29500


def test_cpus_per_rank():
    affinity = len(os.sched_getaffinity(0))
    assert probe.cpus_per_rank({'SLURM_CPUS_PER_TASK': '5', 'LOCAL_WORLD_SIZE': '8'}) == 5
    assert probe.cpus_per_rank({}) == affinity
    assert probe.cpus_per_rank({'LOCAL_WORLD_SIZE': '2'}) == max(1, affinity // 2)
    assert probe.cpus_per_rank({'LOCAL_WORLD_SIZE': str(affinity * 4)}) == 1


def test_more_processes_than_visible_gpus_names_both_numbers_and_the_fix(dev_dir, fake_smi):
    smi = fake_smi(gpus=8)
    message = probe.nproc_problem('16', {}, dev_dir=dev_dir.path, nvidia_smi=smi)
    assert message.startswith('16 processes per node asked for, but this node has 8 visible GPU(s)')
    assert 'NNODES=2 NODE_RANK=0..1 MASTER_ADDR=<first node> PORT=29500 bash tools/dist_train.sh CONFIG 8' in message
    assert 'bash tools/dist_train.sh CONFIG 8, keeping the global batch' in message
    assert probe.nproc_problem('8', {}, dev_dir=dev_dir.path, nvidia_smi=smi) is None
    message = probe.nproc_problem('4', {'CUDA_VISIBLE_DEVICES': '0,1'}, dev_dir=dev_dir.path, nvidia_smi=smi)
    assert message.startswith('4 processes per node asked for, but this node has 2 visible GPU(s) '
                              "(CUDA_VISIBLE_DEVICES=0,1)")
    # device nodes count when nvidia-smi is missing; CPU launches and torchrun's own values are not checked
    assert '3 visible GPU(s)' in probe.nproc_problem('5', {}, dev_dir=dev_dir(3), nvidia_smi=NO_SMI)
    assert probe.nproc_problem('16', {'MMSIMCLR_DEVICE': 'cpu'}, dev_dir=dev_dir.path, nvidia_smi=smi) is None
    assert probe.nproc_problem('gpu', {}, dev_dir=dev_dir.path, nvidia_smi=smi) is None
    assert probe.nproc_problem('16', {}, dev_dir=str(dev_dir.path) + '-none', nvidia_smi=NO_SMI) is None
