"""tools/benchmark/gpu_check.py on a CPU: every section runs at tiny sizes and reports numbers, or says ``n/a on cpu``
where the figure needs CUDA; the text table, the Markdown and the JSON beside it are written; bad arguments are
refused with a message that names them. The ``values`` section (first by default) runs in test_gpu_check_values.py,
not in this module's quick run: once in CI is enough."""
import importlib
import json
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.shared_setup  # one worker makes the module fixture once

SECTIONS = ['nt-xent', 'lars', 'train-step', 'host-syncs', 'augmentation', 'global-bn', 'compile']  # all but values


def _is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@pytest.fixture(scope='module')
def quick_run(repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu_check') / 'check.md'
    proc = subprocess.run(
        [sys.executable, osp.join(repo_root, 'tools', 'benchmark', 'gpu_check.py'), '--device', 'cpu', '--quick',
         '--threads', '1', '--out', str(out), '--sections', *SECTIONS],
        capture_output=True, text=True, timeout=600, cwd=str(out.parent))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout, out.read_text(), json.loads(out.with_suffix('.json').read_text())


def test_every_section_runs_and_reports_numbers_or_na_on_cpu(quick_run):
    _, _, report = quick_run
    assert [s['name'] for s in report['sections']] == SECTIONS
    assert all(s['status'] == 'ok' and s['error'] is None for s in report['sections']), report['sections']
    rows = {name: [r for r in report['rows'] if r['section'] == name] for name in SECTIONS}
    for name, section_rows in rows.items():
        assert section_rows, name
        for r in section_rows:
            for side in ('ref', 'ours'):
                value = r[side]
                assert (_is_num(value) and math.isfinite(value) and value > 0) or value.startswith('n/a on cpu'), r
            if _is_num(r['ref']) and _is_num(r['ours']):
                assert r['ratio'] == pytest.approx(r['ours'] / r['ref'])
            else:
                assert r['ratio'] is None
    numbers = {name: sum(_is_num(r[s]) for r in rs for s in ('ref', 'ours')) for name, rs in rows.items()}
    # measured on a CPU: times and throughputs of both sides; n/a: CUDA sync counts, compiling (minutes on a CPU)
    assert all(numbers[name] >= 2 for name in ('nt-xent', 'lars', 'train-step', 'augmentation')), numbers
    assert numbers['host-syncs'] == 0 and numbers['compile'] == 0 and numbers['global-bn'] == 1, numbers

    def row(section, text):
        (found, ) = [r for r in rows[section] if text in r['metric']]
        return found

    # peak memory is a CUDA figure; mmengine's AmpOptimWrapper refuses a CPU, our bf16 AMP runs there
    assert row('nt-xent', 'extra peak MiB, ours chunked')['ours'] == 'n/a on cpu'
    assert _is_num(row('train-step', 'fp32: images/s')['ref']) and _is_num(row('train-step', 'fp32: images/s')['ours'])
    amp = row('train-step', 'amp: images/s')
    assert amp['ref'].startswith('n/a on cpu') and _is_num(amp['ours']) and 'BF16OptimWrapper' in amp['note']
    # SyncBatchNorm refuses CPU tensors: its error is the note, GlobalBN is timed
    gbn = rows['global-bn'][0]
    assert gbn['ref'] == 'n/a on cpu' and 'SyncBatchNorm' in gbn['note'] and _is_num(gbn['ours'])


def test_markdown_and_text_tables_hold_every_row(quick_run):
    stdout, md, report = quick_run
    env = report['environment']
    assert env['device'] == 'cpu' and env['torch'] == torch.__version__ and env['gpu'] is None and env['quick']
    assert f'torch {torch.__version__}' in md and env['date'] in md
    lines = md.splitlines()
    start = lines.index('| section | metric | reference | ours | ours/ref | note |') + 2
    table = lines[start:lines.index('', start)]
    assert len(table) == len(report['rows'])
    for r, line in zip(report['rows'], table):
        assert line.split('|')[2].strip() == r['metric'].replace('|', '\\|')
    for name in SECTIONS:
        assert f'| {name} | ok |' in md
        assert any(line.startswith(name) for line in stdout.splitlines())


@pytest.fixture
def gpu_check(repo_root, monkeypatch):
    """The script's module, imported as the script imports its neighbours (its folder first on the path)."""
    monkeypatch.syspath_prepend(osp.join(repo_root, 'tools', 'benchmark'))
    for name in ('gpu_check', 'common'):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module('gpu_check')


def test_values_run_first_then_every_other_section_by_default(gpu_check, monkeypatch):
    assert gpu_check.SECTIONS == ['values'] + SECTIONS
    order = []
    monkeypatch.setattr(gpu_check, 'SECTION_FNS', {name: (lambda ctx, name=name: order.append(name))
                                                   for name in gpu_check.SECTIONS})
    assert gpu_check.main(['--device', 'cpu', '--quick']) == 0
    assert order == ['values'] + SECTIONS


@pytest.mark.skipif(torch.cuda.is_available(), reason='the refusal is for machines without CUDA')
def test_cuda_requested_without_cuda_is_refused(gpu_check, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(['--device', 'cuda'])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert '--device cuda: no CUDA device here' in err and 'use --device cpu' in err


@pytest.mark.parametrize('args, message', [
    (['--device', 'cpu', '--out', 'table.txt'], '--out table.txt: give a Markdown file name ending in .md'),
    (['--device', 'cpu', '--budget-s', '0'], '--budget-s 0: give a positive number of seconds'),
    (['--device', 'mps'], '--device mps: only cuda and cpu are supported'),
])
def test_bad_arguments_are_refused(gpu_check, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_spent_budget_stops_the_running_section_and_skips_the_rest(gpu_check, tmp_path, capsys):
    """0.3 s cannot build and step two LARS optimizers on ResNet-18: the alarm stops that section, the next one
    is skipped, both say so in the table, and the run still writes its files (a stopped section is no failure)."""
    out = tmp_path / 'budget.md'
    assert gpu_check.main(['--device', 'cpu', '--quick', '--budget-s', '0.3', '--sections', 'lars', 'nt-xent',
                           '--out', str(out)]) == 0
    report = json.loads(out.with_suffix('.json').read_text())
    assert [(s['name'], s['status']) for s in report['sections']] == [('lars', 'stopped'), ('nt-xent', 'skipped')]
    notes = {r['section']: r['note'] for r in report['rows']}
    assert notes == {'lars': 'stopped: time budget of 0.3 s spent during this section',
                     'nt-xent': 'skipped: time budget of 0.3 s spent'}
    assert 'stopped: time budget' in capsys.readouterr().out
