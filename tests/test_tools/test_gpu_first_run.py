"""tools/benchmark/gpu_first_run.sh, what a session with a lent GPU runs first: its syntax, the commands of
``--dry-run`` (the CUDA tests found in tests/, gpu_check with values first, every step under ``timeout`` within the
budget), its refusals, and a rehearsal on the CPU (``--device cpu``) that writes the one Markdown report."""
import glob
import json
import os
import os.path as osp
import re
import subprocess

import pytest

SCRIPT = osp.join('tools', 'benchmark', 'gpu_first_run.sh')


def run(repo_root, *args, env=None, timeout=120):
    return subprocess.run(['bash', SCRIPT, *args], cwd=repo_root, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def test_bash_syntax(repo_root):
    proc = subprocess.run(['bash', '-n', SCRIPT], cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def cuda_test_files(repo_root):
    files = []
    for path in sorted(glob.glob(osp.join(repo_root, 'tests', '**', 'test_*.py'), recursive=True)):
        with open(path) as f:
            if 'skipif(not torch.cuda.is_available()' in f.read():
                files.append(osp.relpath(path, repo_root))
    return files


def test_dry_run_prints_every_command_within_the_budget(repo_root, tmp_path):
    proc = run(repo_root, '--dry-run', '--budget-s', '480', env=dict(OUT=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert not list(tmp_path.iterdir())  # nothing written
    assert f'report {tmp_path}/gpu_first_run.md' in out  # the device machine's $OUT
    commands = [line[2:] for line in out.splitlines() if line.startswith('+ ')]
    assert all(c.startswith('timeout ') for c in commands), commands
    (pytest_cmd, ) = [c for c in commands if ' -m pytest ' in c]
    files = cuda_test_files(repo_root)
    assert files and pytest_cmd.endswith('-k cuda ' + ' '.join(files))
    (check, ) = [c for c in commands if 'gpu_check.py' in c]
    assert '--device cuda' in check and '--sections' not in check  # default order: values first, then the rest
    # caps: versions 3 x (limit + 5 s kill grace), the tests, gpu_check (its budget + 20 s + 10 s kill grace)
    caps = [int(m.group(2)) + int(m.group(1)) for m in (re.match(r'timeout -k (\d+) (\d+) ', c) for c in commands)]
    gc_budget = int(re.search(r'--budget-s (\d+)', check).group(1))
    assert caps[-1] == gc_budget + 30 and gc_budget + 30 <= 480
    assert sum(caps[:-1]) <= 480 - 120  # the steps before leave gpu_check at least 2 minutes


def test_default_report_and_python(repo_root):
    proc = run(repo_root, '--dry-run', env=dict(OUT=''))
    assert 'budget 480 s' in proc.stdout and 'report work_dirs/gpu_first_run.md' in proc.stdout
    python = '.venv/bin/python' if osp.exists(osp.join(repo_root, '.venv', 'bin', 'python')) else 'python3'
    assert f'python {python}' in proc.stdout.splitlines()[0]


@pytest.mark.parametrize('args, message', [
    (['--budget-s', '100'], '--budget-s 100: give at least 240 s'),
    (['--budget-s', '4m'], '--budget-s 4m: give a whole number of seconds'),
    (['--out', 'report.txt'], '--out report.txt: give a Markdown file name ending in .md'),
    (['--sections', 'values'], "unknown argument '--sections' (see --help)"),
])
def test_bad_arguments_are_refused(repo_root, args, message):
    proc = run(repo_root, '--dry-run', *args)
    assert proc.returncode == 2 and message in proc.stderr


@pytest.mark.slow
def test_cpu_rehearsal_writes_one_report(repo_root, tmp_path):
    """The whole script on a CPU: versions, the CUDA tests (skipped here), gpu_check (one cheap section: the values
    run in test_gpu_check_values.py), the report and gpu_check's JSON beside it."""
    report = tmp_path / 'first.md'
    proc = run(repo_root, '--device', 'cpu', '--budget-s', '300', '--out', str(report), '--', '--quick', '--sections',
               'lars', timeout=320)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['first.gpu_check.json', 'first.md']
    md = report.read_text()
    for heading in ('# GPU first run on cpu', '## Summary', '## GPU check: mmsimclr vs mmpretrain on cpu',
                    '### Speed and memory: mmsimclr vs mmpretrain', '## CUDA unit tests', '## Versions'):
        assert f'\n{heading}\n' in f'\n{md}', heading
    assert re.search(r'- CUDA unit tests: exit 0 \(ok\) in \d+ s: .*skipped', md)
    assert re.search(r'- gpu_check.py: exit 0 \(ok\) in \d+ s \(budget \d+ s\); values: not in this run', md)
    assert '| lars | ResNet-18 + neck' in md and 'torch sees no CUDA device' in md and 'TF32 defaults' in md
    report_json = json.loads((tmp_path / 'first.gpu_check.json').read_text())
    assert [s['name'] for s in report_json['sections']] == ['lars']
