"""What a launch needs to know about the machine before any process group starts: GPUs, ports, CPUs, nodes.

Why: when torch cannot use CUDA, mmsimclr's distributed start-up falls back to gloo CPU processes (that is what makes
``dist_train.sh CONFIG 2`` work on laptops and in CI). On a GPU machine the same fallback silently trains ResNet-50
on CPUs at a thousandth of the speed. :func:`cuda_problem` tells the two apart -- the machine has NVIDIA GPUs
(``/dev/nvidia[0-9]*`` device nodes, or ``nvidia-smi -L`` lists some) or a slurm job asked for them -- and, when
torch cannot use CUDA there, names the likely cause: a torch built without CUDA, a driver older than the CUDA that
torch was built for, an empty or invalid ``CUDA_VISIBLE_DEVICES``, a slurm job that was given no GPUs.

``MMSIMCLR_DEVICE`` chooses the device of a launch: ``auto`` (default: CUDA when torch can use it; CPU/gloo on a
machine without GPUs; an error on a GPU machine where CUDA does not work), ``cpu`` (CPU/gloo on purpose, GPUs hidden)
or ``cuda`` (an error unless CUDA works). The launch scripts pass it on (torchrun and srun keep the environment).

Only the standard library is imported at module level, on purpose: ``tools/torchrun.sh`` runs this file before
torchrun (``python mmsimclr/utils/device_probe.py check``) and, on a machine without GPUs, answers without importing
torch (seconds); torch is imported only when GPUs are expected. The probe's paths (device-node folder, ``nvidia-smi``,
``scontrol``) are arguments, so tests can point them at fakes.
"""
import glob
import os
import os.path as osp
import re
import shutil
import socket
import subprocess
import sys
from typing import Dict, List, Mapping, Optional, Tuple

DEVICE_ENV = 'MMSIMCLR_DEVICE'
DEVICES = ('auto', 'cpu', 'cuda')
SMI_TIMEOUT_S = 15  # nvidia-smi can hang on a wedged driver; the launch must not
# Where the probe looks by default (tests point these at fakes): the device-node folder and the two slurm/NVIDIA tools
DEV_DIR = '/dev'
NVIDIA_SMI = 'nvidia-smi'
SCONTROL = 'scontrol'


class DeviceError(RuntimeError):
    """The launch would run on the wrong device (CPU on a GPU machine, or CUDA asked for but unusable)."""


# ------------------------------------------------------------------------------------------------------- the ask
def requested_device(env: Mapping[str, str] = os.environ) -> str:
    """``MMSIMCLR_DEVICE`` (``auto`` when unset or empty), checked."""
    value = (env.get(DEVICE_ENV) or 'auto').strip().lower()
    if value not in DEVICES:
        raise DeviceError(f'{DEVICE_ENV}={env.get(DEVICE_ENV)!r} is not one of {", ".join(DEVICES)}; use '
                          f'{DEVICE_ENV}=cpu to run on the CPU on purpose, or leave it unset')
    return value


# --------------------------------------------------------------------------------------------- does it have GPUs
def nvidia_device_nodes(dev_dir: Optional[str] = None) -> List[str]:
    """The NVIDIA GPU device nodes (``nvidia0``, ``nvidia1``, ...; not ``nvidiactl`` / ``nvidia-uvm``)."""
    return sorted(glob.glob(osp.join(dev_dir or DEV_DIR, 'nvidia[0-9]*')))


def _run(cmd: List[str]) -> Tuple[int, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SMI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, f'{" ".join(cmd)} did not answer within {SMI_TIMEOUT_S} s'
    except OSError as e:
        return -1, f'{" ".join(cmd)}: {e}'
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def nvidia_smi_gpus(nvidia_smi: Optional[str] = None) -> Tuple[List[str], Optional[str]]:
    """(``GPU i: name`` lines of ``nvidia-smi -L``, error text or None). ``[], None`` when nvidia-smi is absent."""
    exe = shutil.which(nvidia_smi or NVIDIA_SMI)
    if exe is None:
        return [], None
    rc, out = _run([exe, '-L'])
    gpus = [line.strip() for line in out.splitlines() if line.strip().startswith('GPU ')]
    return gpus, (None if rc == 0 else (out.splitlines() or [f'exit status {rc}'])[0][:300])


def driver_cuda_version(nvidia_smi: Optional[str] = None) -> Optional[str]:
    """The highest CUDA version the installed driver supports, from ``nvidia-smi``'s header (``CUDA Version: 12.2``)."""
    exe = shutil.which(nvidia_smi or NVIDIA_SMI)
    if exe is None:
        return None
    _, out = _run([exe])
    found = re.search(r'CUDA Version:\s*([0-9]+(?:\.[0-9]+)?)', out)
    return found.group(1) if found else None


def slurm_gpu_request(env: Mapping[str, str] = os.environ) -> Optional[str]:
    """``NAME=value`` of the first slurm variable saying that the job (or step) was given / asked for GPUs."""
    for name in ('SLURM_GPUS', 'SLURM_GPUS_ON_NODE', 'SLURM_GPUS_PER_NODE', 'SLURM_GPUS_PER_TASK',
                 'SLURM_JOB_GPUS', 'SLURM_STEP_GPUS'):
        value = env.get(name, '').strip()
        if value and value != '0':
            return f'{name}={value}'
    for name in ('SLURM_JOB_GRES', 'SLURM_STEP_GRES', 'SLURM_GRES', 'SLURM_TRES_PER_TASK', 'SLURM_TRES_PER_NODE'):
        value = env.get(name, '')
        if re.search(r'gpu(?!:0\b)', value):
            return f'{name}={value}'
    return None


def gpu_evidence(env: Mapping[str, str] = os.environ, dev_dir: Optional[str] = None,
                 nvidia_smi: Optional[str] = None) -> Dict[str, object]:
    """What says that this process should have GPUs: ``nodes`` (device nodes), ``smi`` (``nvidia-smi -L`` lines),
    ``smi_error``, ``slurm`` (a GPU request of the slurm job). Empty lists / None where nothing does."""
    gpus, error = nvidia_smi_gpus(nvidia_smi)
    return dict(nodes=nvidia_device_nodes(dev_dir), smi=gpus, smi_error=error, slurm=slurm_gpu_request(env))


def expects_gpus(evidence: Mapping[str, object]) -> bool:
    return bool(evidence['nodes'] or evidence['smi'] or evidence['slurm'])


# ------------------------------------------------------------------------------------------- why CUDA is missing
def _version_tuple(text: str) -> Tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r'\d+', text)[:2])


def visible_devices_problem(value: str, num_gpus: int = 0) -> Optional[str]:
    """Why ``CUDA_VISIBLE_DEVICES=value`` shows no GPU, or None. CUDA reads the list up to the first entry that is
    not a GPU index (``0``, ``1``...; below the number of GPUs when known) or UUID (``GPU-...``, ``MIG-...``)."""
    first = value.split(',')[0].strip()
    if not first:
        return 'CUDA_VISIBLE_DEVICES is set but empty, which hides every GPU'
    if first.startswith(('GPU-', 'MIG-')):
        return None
    if not first.isdigit():
        return (f'CUDA_VISIBLE_DEVICES={value!r} names no GPU (CUDA expects GPU indices such as 0,1 or GPU-/MIG- '
                'UUIDs and stops at the first entry it cannot read; slurm writes NoDevFiles when a job has no GPUs)')
    if num_gpus and int(first) >= num_gpus:
        return f'CUDA_VISIBLE_DEVICES={value!r} names GPU {first}, but this machine has {num_gpus} (0..{num_gpus - 1})'
    return None


def cuda_problem(env: Mapping[str, str] = os.environ, dev_dir: Optional[str] = None,
                 nvidia_smi: Optional[str] = None, launcher: str = 'pytorch') -> Optional[str]:
    """None when the launch may go ahead: torch can use CUDA, or CPU was asked for (``MMSIMCLR_DEVICE=cpu``), or
    nothing says this machine / job has GPUs (then CPU/gloo is the right default). Otherwise the message of the error
    to stop with: what says there are GPUs, the likely cause(s) and the fix."""
    device = requested_device(env)
    if device == 'cpu':
        return None
    evidence = gpu_evidence(env, dev_dir, nvidia_smi)
    if device == 'auto' and not expects_gpus(evidence):
        return None  # a machine without GPUs: CPU processes over gloo, as on laptops and in CI
    import torch  # only now: a GPU machine (or CUDA asked for), where torch will be needed anyway
    if torch.cuda.is_available():
        return None

    machine = []
    if evidence['nodes']:
        nodes = evidence['nodes']
        machine.append('device nodes ' + ', '.join(nodes[:4]) + (f' (+{len(nodes) - 4})' if len(nodes) > 4 else ''))
    if evidence['smi']:
        machine.append(f'nvidia-smi -L lists {len(evidence["smi"])} GPU(s) ({evidence["smi"][0]})')
    says = ([f'this machine has NVIDIA GPUs ({"; ".join(machine)})'] if machine else []) + (
        [f'the slurm job asked for GPUs ({evidence["slurm"]})'] if evidence['slurm'] else [])
    head = ' and '.join(says or [f'{DEVICE_ENV}=cuda']) + ', but torch cannot use CUDA'
    if device == 'auto' and launcher == 'none':  # one process: a warning, not an error (mmsimclr.utils.dist)
        head += ', so this process trains on the CPU, orders of magnitude slower'
    elif device == 'auto':
        head += ', so this launch would silently train on CPU processes (gloo), orders of magnitude slower'

    causes = []
    if torch.version.cuda is None:
        causes.append(f'this torch ({torch.__version__}) is built without CUDA: install a CUDA build of torch that '
                      'your driver supports, e.g. pip install torch --index-url https://download.pytorch.org/whl/cu126 '
                      '(docs/en/get_started.md, "On a GPU cluster: bring the cluster\'s torch")')
    visible = env.get('CUDA_VISIBLE_DEVICES')
    if visible is not None:
        problem = visible_devices_problem(visible, len(evidence['smi']))
        if problem:
            causes.append(problem + ': unset it, or list the GPUs to use (e.g. CUDA_VISIBLE_DEVICES=0,1)')
    if ('SLURM_JOB_ID' in env or launcher == 'slurm') and not evidence['slurm']:
        causes.append('this slurm job was given no GPUs (no SLURM_GPUS*, SLURM_JOB_GPUS or gpu gres): submit it with '
                      '--gres=gpu:N or --gpus-per-node=N (tools/slurm_train.sh passes --gres=gpu:$GPUS_PER_NODE)')
    driver_cuda = driver_cuda_version(nvidia_smi) if (evidence['smi'] or evidence['nodes']) else None
    if torch.version.cuda and driver_cuda and _version_tuple(driver_cuda) < _version_tuple(torch.version.cuda):
        causes.append(f'the NVIDIA driver is too old for this torch: torch {torch.__version__} is built for CUDA '
                      f'{torch.version.cuda}, the driver supports CUDA up to {driver_cuda} (nvidia-smi): update the '
                      f'driver, or install a torch built for CUDA <= {driver_cuda} '
                      '(pip install torch --index-url https://download.pytorch.org/whl/cuXYZ)')
    if evidence['slurm'] and not machine:
        causes.append('this node shows no NVIDIA device nodes (/dev/nvidia0...) and no working nvidia-smi although '
                      'the job asked for GPUs: the partition\'s nodes may have no GPUs, or their NVIDIA driver is not '
                      'installed / loaded (ask the cluster admins; sinfo -o "%P %G" lists the GPUs of each partition)')
    if evidence['smi_error']:
        causes.append(f'nvidia-smi fails ({evidence["smi_error"]}): the driver is not loaded or does not match its '
                      'tools; nvidia-smi must work before CUDA can')
    try:  # CUDA's own words (e.g. "Found no NVIDIA driver", "The NVIDIA driver on your system is too old")
        torch.cuda.init()
        torch_says = None
    except Exception as e:  # noqa: BLE001 -- any failure here is the answer we want to show
        torch_says = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
    if not causes:
        causes.append('not found by mmsimclr; run nvidia-smi and python -c "import torch; torch.cuda.init()" to see '
                      'what CUDA reports')
    message = f'{head}. Likely cause: ' + ' Also: '.join(f'{c}.' for c in causes)
    if torch_says:
        message += f' (torch.cuda.init() says: {torch_says})'
    return message + f' To train on the CPU on purpose, set {DEVICE_ENV}=cpu.'


# ------------------------------------------------------------------------------------- processes vs GPUs of a node
def visible_gpu_count(env: Mapping[str, str], evidence: Mapping[str, object]) -> Optional[int]:
    """GPUs a process of this node can see: those ``nvidia-smi -L`` lists (else the device nodes), narrowed by
    ``CUDA_VISIBLE_DEVICES`` (its entries up to the first one CUDA cannot read); None when nothing lists GPUs."""
    gpus = len(evidence['smi']) or len(evidence['nodes'])
    if not gpus:
        return None
    visible = env.get('CUDA_VISIBLE_DEVICES')
    if visible is None:
        return gpus
    entries = 0
    for entry in visible.split(','):
        entry = entry.strip()
        if not (entry.startswith(('GPU-', 'MIG-')) or (entry.isdigit() and int(entry) < gpus)):
            break
        entries += 1
    return min(entries, gpus)


def nproc_problem(nproc: str, env: Mapping[str, str] = os.environ, dev_dir: Optional[str] = None,
                  nvidia_smi: Optional[str] = None) -> Optional[str]:
    """The error to stop a torchrun launch with when it would start more processes on this node than it has visible
    GPUs (one process per GPU: the extra ranks fail at ``cuda.set_device`` and torchrun restarts the whole group
    ``MAX_RESTARTS`` times before giving up), or None. CPU launches (no GPUs, ``MMSIMCLR_DEVICE=cpu``) start any
    number of processes."""
    if not str(nproc).isdigit() or requested_device(env) == 'cpu':
        return None
    evidence = gpu_evidence(env, dev_dir, nvidia_smi)
    count = visible_gpu_count(env, evidence)
    wanted = int(nproc)
    if count is None or wanted <= count:
        return None
    shown = f' (CUDA_VISIBLE_DEVICES={env["CUDA_VISIBLE_DEVICES"]})' if 'CUDA_VISIBLE_DEVICES' in env else ''
    message = (f'{wanted} processes per node asked for, but this node has {count} visible GPU(s){shown}; '
               'torchrun starts one process per GPU. ')
    if count and wanted % count == 0:
        nodes = wanted // count
        message += (f'For {wanted} GPUs run on {nodes} nodes of {count}: on each node, NNODES={nodes} '
                    f'NODE_RANK=0..{nodes - 1} MASTER_ADDR=<first node> PORT=29500 bash tools/dist_train.sh CONFIG '
                    f'{count}. ')
    if count:
        message += (f'Or train on this node with bash tools/dist_train.sh CONFIG {count}, keeping the global batch by '
                    f'--cfg-options train_dataloader.batch_size=<{wanted}/{count} x the per-GPU batch> (with the '
                    'exact large-batch mode, model.grad_cache, if it does not fit).')
    else:
        message += 'CUDA_VISIBLE_DEVICES hides every GPU: unset it or list the GPUs to use.'
    return message


# ------------------------------------------------------------------------------------------------ nodes and ports
def first_hostname(nodelist: str, scontrol: Optional[str] = None) -> str:
    """The first host of a slurm node list (``node[01-04,07],gpu5`` -> ``node01``): ``scontrol show hostnames``
    when it is installed, else the list's simple forms parsed here (comma lists, bracketed ranges)."""
    exe = shutil.which(scontrol or SCONTROL)
    if exe is not None:
        rc, out = _run([exe, 'show', 'hostnames', nodelist])
        if rc == 0 and out.split():
            return out.split()[0]
    depth, first = 0, nodelist.strip()
    for i, ch in enumerate(first):  # the first entry: up to a comma outside brackets
        depth += (ch == '[') - (ch == ']')
        if ch == ',' and depth == 0:
            first = first[:i]
            break
    # every bracket group -> its first element ("01-04,07" -> "01"), zero padding kept
    host = re.sub(r'\[([^\]]*)\]', lambda m: re.split(r'[,-]', m.group(1))[0], first)
    if not host or '[' in host or ']' in host:
        raise ValueError(f'cannot read the slurm node list {nodelist!r}; set MASTER_ADDR to the first node')
    return host


def slurm_port(job_id: Optional[str]) -> int:
    """A rendezvous port that every task of a slurm job derives alike (no communication needed) and that differs
    between jobs sharing a node: 20000 + job id mod 10000 (below Linux's ephemeral ports, 32768+)."""
    return 20000 + int(job_id) % 10000 if job_id and job_id.isdigit() else 29500


def free_port(host: str = '') -> int:
    """A TCP port free right now (the OS picks it): for a single-node torchrun, where nothing else must agree."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------------------- CPUs
def cpus_per_rank(env: Mapping[str, str] = os.environ) -> int:
    """CPUs one training process may use: slurm's ``SLURM_CPUS_PER_TASK``, else the CPUs this process may run on
    (``os.sched_getaffinity``) shared by the processes torchrun starts on this node (``LOCAL_WORLD_SIZE``)."""
    per_task = env.get('SLURM_CPUS_PER_TASK', '').strip()
    if per_task.isdigit() and int(per_task) > 0:
        return int(per_task)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    local = env.get('LOCAL_WORLD_SIZE', '').strip()
    return max(1, cpus // (int(local) if local.isdigit() and int(local) > 0 else 1))


def main(argv: Optional[List[str]] = None) -> int:
    """``check [--launcher L] [--nproc N]``: exit 1 with the message of :func:`nproc_problem` (N processes per node)
    or :func:`cuda_problem`; ``free-port``: print one."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['free-port']:
        print(free_port())
        return 0
    if argv[:1] == ['check']:
        launcher = argv[argv.index('--launcher') + 1] if '--launcher' in argv else 'pytorch'
        nproc = argv[argv.index('--nproc') + 1] if '--nproc' in argv else None
        try:  # more processes than GPUs first: it needs no torch, so it answers at once
            problem = (nproc_problem(nproc) if nproc is not None else None) or cuda_problem(launcher=launcher)
        except DeviceError as e:
            problem = str(e)
        if problem:
            print(f'mmsimclr: {problem}', file=sys.stderr)
            return 1
        return 0
    print('usage: python device_probe.py check [--launcher pytorch|slurm] [--nproc N] | free-port', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
