"""The launch scripts' argument handling, run for real with stand-ins first on PATH: an ``srun`` and a ``python`` that
record what they were asked to run (instead of starting a job), a ``nvidia-smi`` that lists GPUs. Also: torchrun
restarts make tools/train.py resume from the latest checkpoint."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from tests.executables import write_exe

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')
SCRIPTS = ['dist_train.sh', 'dist_test.sh', 'torchrun.sh', 'slurm_train.sh', 'slurm_test.sh', 'slurm_run.sh']


@pytest.fixture
def fakes(tmp_path):
    """``bin/srun`` and ``bin/python-wrapper`` record their arguments (one per line) and the launch variables."""
    folder = tmp_path / 'bin'
    folder.mkdir()
    record = tmp_path / 'record.txt'
    dump = ('for a in "$@"; do printf "%s\\n" "$a"; done > "{rec}"\n'
            'echo "ENV MASTER_PORT=${{MASTER_PORT-unset}} MMSIMCLR_DEVICE=${{MMSIMCLR_DEVICE-unset}}" >> "{rec}"\n'
            ).format(rec=record)
    write_exe(folder / 'srun', '#!/bin/sh\n' + dump)
    python = write_exe(folder / 'python-wrapper', '#!/bin/sh\nif [ "$1 $2" = "-m torch.distributed.run" ]; then\n'
                  f'shift 2\n{dump}exit 0\nfi\nexec "{sys.executable}" "$@"\n')

    class Fakes:
        bin, path_dir = str(folder), folder

        @staticmethod
        def run(args, **env):
            full = dict(os.environ, PATH=f'{folder}:{os.environ["PATH"]}', PYTHON=python)
            for k in ('PORT', 'MASTER_PORT', 'NNODES', 'MASTER_ADDR', 'MAX_RESTARTS', 'MMSIMCLR_DEVICE', 'GPUS'):
                full.pop(k, None)
            full.update(env)
            if record.exists():
                record.unlink()
            proc = subprocess.run(['bash', '-u'] + args, cwd=ROOT, env=full, capture_output=True, text=True,
                                  timeout=120)
            return proc, (record.read_text().splitlines() if record.exists() else None)
    return Fakes


def _value(recorded, flag):
    return [a.split('=', 1)[1] for a in recorded if a.startswith(flag + '=')]


@pytest.mark.parametrize('script', SCRIPTS)
def test_scripts_parse(script):
    proc = subprocess.run(['bash', '-n', osp.join(ROOT, 'tools', script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize('script', SCRIPTS)
def test_no_array_expansion_that_old_bash_rejects(script):
    """bash <= 4.3 under ``set -u`` fails on ``"${ARRAY[@]}"`` of an empty array ("unbound variable"); the scripts
    pass optional arguments through ``"$@"`` instead (fine with no arguments in every bash), which this runs."""
    code = [line for line in open(osp.join(ROOT, 'tools', script)) if not line.lstrip().startswith('#')]
    assert not [line for line in code if re.search(r'\$\{\w+\[[@*]\]', line)]
    proc = subprocess.run(['bash', '-c', 'set -euo pipefail; f() { printf "<%s>" x "$@"; }; f "$@"', 'bash'],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == '<x>'


@pytest.mark.parametrize('work_dir', [None, 'work_dirs/run1'])
def test_slurm_train_arguments_with_and_without_work_dir(fakes, work_dir):
    proc, recorded = fakes.run(['tools/slurm_train.sh', 'gpu', 'simclr', 'cfg.py'] + ([work_dir] if work_dir else [])
                               + ['--amp', '--cfg-options', 'a=1'])
    assert proc.returncode == 0, proc.stderr
    start = recorded.index(osp.join(ROOT, 'tools', 'train.py'))
    assert recorded[:start] == ['-p', 'gpu', '--job-name=simclr', '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
                                '--cpus-per-task=5', '--kill-on-bad-exit=1', fakes.bin + '/python-wrapper', '-u']
    assert recorded[start + 1:-1] == (['cfg.py'] + (['--work-dir', work_dir] if work_dir else [])
                                      + ['--amp', '--cfg-options', 'a=1', '--launcher', 'slurm'])
    # no PORT: the tasks derive MASTER_PORT from the job id (nothing exported that two jobs would share)
    assert recorded[-1] == 'ENV MASTER_PORT=unset MMSIMCLR_DEVICE=unset'


def test_slurm_scripts_port_and_explicit_cpu(fakes, tmp_path):
    proc, recorded = fakes.run(['tools/slurm_train.sh', 'cpu', 'simclr', 'cfg.py', 'wd'], PORT='31234',
                               MMSIMCLR_DEVICE='cpu', GPUS='4', SRUN_ARGS='--time=10 --qos=low')
    assert proc.returncode == 0, proc.stderr
    assert not any(a.startswith('--gres') for a in recorded)
    assert '--ntasks=4' in recorded and recorded.index('--qos=low') < recorded.index(fakes.bin + '/python-wrapper')
    assert recorded[-1] == 'ENV MASTER_PORT=31234 MMSIMCLR_DEVICE=cpu'

    ckpt = tmp_path / 'c.pth'
    proc, recorded = fakes.run(['tools/slurm_test.sh', 'gpu', 'ev', 'cfg.py', str(ckpt), '--out', 'm.json'])
    assert proc.returncode == 0, proc.stderr
    assert '--gres=gpu:8' in recorded and recorded[-1] == 'ENV MASTER_PORT=unset MMSIMCLR_DEVICE=unset'
    assert recorded[-6:-1] == [str(ckpt), '--out', 'm.json', '--launcher', 'slurm']


def test_slurm_usage_without_arguments(fakes):
    proc, recorded = fakes.run(['tools/slurm_train.sh', 'gpu'])
    assert proc.returncode == 2 and 'usage:' in proc.stderr and recorded is None


def test_torchrun_single_node_picks_a_free_port_and_restarts(fakes):
    proc, recorded = fakes.run(['tools/dist_train.sh', TINY, '2', '--amp'])
    assert proc.returncode == 0, proc.stderr
    host, port = _value(recorded, '--rdzv-endpoint')[0].split(':')
    port = int(port)
    assert host == '127.0.0.1' and _value(recorded, '--rdzv-backend') == ['c10d']
    assert 1024 <= port < 65536 and port != 29500
    assert _value(recorded, '--max-restarts') == ['3'] and _value(recorded, '--nproc_per_node') == ['2']
    assert recorded[-6:-1] == [osp.join(ROOT, 'tools', 'train.py'), TINY, '--amp', '--launcher', 'pytorch']

    proc, recorded = fakes.run(['tools/dist_train.sh', TINY, '2'], PORT='29777', MAX_RESTARTS='0')
    assert _value(recorded, '--rdzv-endpoint') == ['127.0.0.1:29777'] and _value(recorded, '--max-restarts') == ['0']


def test_dist_test_does_not_restart_by_default(fakes, tmp_path):
    proc, recorded = fakes.run(['tools/dist_test.sh', TINY, str(tmp_path / 'c.pth'), '2'])
    assert proc.returncode == 0, proc.stderr
    assert _value(recorded, '--max-restarts') == ['0']


def test_torchrun_multi_node_needs_port_and_master_addr(fakes):
    proc, recorded = fakes.run(['tools/dist_train.sh', TINY, '8'], NNODES='2', NODE_RANK='1')
    assert proc.returncode == 2 and recorded is None
    assert 'NNODES=2: set PORT and MASTER_ADDR' in proc.stderr
    proc, recorded = fakes.run(['tools/dist_train.sh', TINY, '8'], NNODES='2', NODE_RANK='1', PORT='29555',
                               MASTER_ADDR='node1')
    assert proc.returncode == 0, proc.stderr
    assert _value(recorded, '--rdzv-endpoint') == ['node1:29555']


@pytest.mark.skipif(torch.cuda.is_available(), reason='simulates a GPU machine where torch cannot use CUDA')
def test_torchrun_stops_before_starting_on_a_gpu_machine_without_cuda(fakes):
    write_exe(fakes.path_dir / 'nvidia-smi', '#!/bin/sh\nif [ "$1" = "-L" ]; then echo "GPU 0: NVIDIA A100-SXM4-40GB '
         '(UUID: GPU-x)"; exit 0; fi\necho "| NVIDIA-SMI 450.80.02  Driver Version: 450.80.02  CUDA Version: 11.0 |"\n')
    proc, recorded = fakes.run(['tools/dist_train.sh', TINY, '1'])  # (2 would be refused first: 1 GPU)
    assert proc.returncode == 1 and recorded is None  # torchrun never started
    assert proc.stderr.startswith('mmsimclr: this machine has NVIDIA GPUs (nvidia-smi -L lists 1 GPU(s)')
    assert 'To train on the CPU on purpose, set MMSIMCLR_DEVICE=cpu.' in proc.stderr
    proc, recorded = fakes.run(['tools/dist_train.sh', TINY, '2'], MMSIMCLR_DEVICE='cpu')
    assert proc.returncode == 0, proc.stderr
    assert recorded[-1] == 'ENV MASTER_PORT=unset MMSIMCLR_DEVICE=cpu'


# ------------------------------------------------------------------------ torchrun restarts resume (tools/train.py)
@pytest.mark.parametrize('restarts, given, resume, load_from', [
    (None, [], False, None), ('0', [], False, None), ('2', [], True, None),
    ('1', ['--resume', TINY], True, TINY),  # an explicit checkpoint is kept
])
def test_restarted_training_resumes_auto(monkeypatch, tmp_path, restarts, given, resume, load_from):
    from tools.train import build_config, parse_args
    if restarts is None:
        monkeypatch.delenv('TORCHELASTIC_RESTART_COUNT', raising=False)
    else:
        monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', restarts)
    args = parse_args([TINY, '--work-dir', str(tmp_path)] + given)
    assert args.resume == ('auto' if restarts == '2' else (TINY if given else None))
    cfg = build_config(args)
    assert (cfg.resume, cfg.load_from) == (resume, load_from)  # resume=False: the config's default


@pytest.mark.skipif(torch.cuda.is_available(), reason='simulates a GPU job where torch cannot use CUDA')
def test_slurm_gpu_job_without_cuda_stops_in_train_py(fakes, tmp_path):
    """End to end: slurm_train.sh -> an srun stand-in that runs the task as slurm would after ``--gres=gpu:8`` (one
    task, SLURM_JOB_GRES set) -> tools/train.py stops before any process group, exit status 1, cause named."""
    write_exe(fakes.path_dir / 'srun', f'#!{sys.executable}\n'
         'import os, sys\n'
         'args = sys.argv[1:]\n'
         'cmd = args[next(i for i, a in enumerate(args) if a.endswith("python-wrapper")):]\n'
         'os.environ.update(SLURM_PROCID="0", SLURM_NTASKS="1", SLURM_LOCALID="0", SLURM_NODELIST="gpu[07-08]",\n'
         '                  SLURM_JOB_ID="99", SLURM_JOB_GRES="gpu:8")\n'
         'os.execv(cmd[0], cmd)\n')
    proc, _ = fakes.run(['tools/slurm_train.sh', 'gpu', 'simclr', TINY, str(tmp_path / 'work')])
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(
        'mmsimclr: the slurm job asked for GPUs (SLURM_JOB_GRES=gpu:8), but torch '
        'cannot use CUDA')
    assert 'init_process_group' not in proc.stderr and not os.path.exists(tmp_path / 'work')


def test_dist_train_refuses_more_processes_than_gpus_before_any_rank_starts(fakes):
    """``dist_train.sh CONFIG 16`` on a node whose nvidia-smi lists 8 GPUs stops before torchrun (which would start
    16 processes, 8 failing at cuda.set_device, and restart the group 3 times), naming both numbers and the fix."""
    lines = ''.join(f'echo "GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i}abc)"\n' for i in range(8))
    write_exe(fakes.path_dir / 'nvidia-smi', f'#!/bin/sh\nif [ "$1" = "-L" ]; then\n{lines}exit 0\nfi\nexit 0\n')
    proc, recorded = fakes.run(['tools/dist_train.sh', TINY, '16'])
    assert proc.returncode == 1 and recorded is None  # torchrun never ran
    assert '16 processes per node asked for, but this node has 8 visible GPU(s)' in proc.stderr
    assert 'NNODES=2 NODE_RANK=0..1' in proc.stderr
