"""The ``values`` section of tools/benchmark/gpu_check.py on a CPU (float32 on the CPU vs float64): every check runs
and PASSes through the command line (``--device cpu --quick --sections values``, what a GPU session runs first with
``--device cuda``), and a deliberately wrong implementation -- patched into this process, and into the 2 forked
ranks -- FAILs the rows that check it while the others still PASS; a FAIL or ERROR row makes the exit status 1.

The quick run of all the other sections is ``test_gpu_check.py`` (it leaves ``values`` out: it runs here once)."""
import importlib
import json
import logging
import re
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch

CHECKS = ['NT-Xent plain', 'NT-Xent chunked', 'LARS', 'GlobalBN, 2 gloo ranks', 'DDP 2 gloo ranks', 'train step']


@pytest.fixture(scope='module')
def values_run(repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu_check_values') / 'values.md'
    proc = subprocess.run(
        [sys.executable, osp.join(repo_root, 'tools', 'benchmark', 'gpu_check.py'), '--device', 'cpu', '--quick',
         '--threads', '1', '--sections', 'values', '--out', str(out)],
        capture_output=True, text=True, timeout=300, cwd=str(out.parent))
    return proc, out


@pytest.mark.distributed
def test_every_value_check_passes_on_cpu(values_run):
    proc, out = values_run
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    report = json.loads(out.with_suffix('.json').read_text())
    assert [(s['name'], s['status']) for s in report['sections']] == [('values', 'ok')]
    rows = report['rows']
    assert rows and all(r['section'] == 'values' for r in rows)
    for r in rows:
        if r['precision'] == 'tf32':  # TF32 is a CUDA mode
            assert r['result'] == 'n/a' and r['note'].startswith('n/a on cpu'), r
        else:
            assert r['result'] == 'PASS' and 0 <= r['rel_err'] <= r['tol'], r
    for check in CHECKS:
        assert any(r['metric'].startswith(check) for r in rows), check
    precisions = {r['precision'] for r in rows if r['metric'].startswith('train step')}
    assert precisions == {'fp32', 'tf32', 'bf16'}  # bf16: our --amp on a CPU (BF16OptimWrapper)
    assert report['environment']['values'] == {'PASS': len(rows) - 4, 'n/a': 4}
    # the table on stdout and in the Markdown
    md = out.read_text()
    assert '## Values: this device vs a float64 CPU reference' in md
    assert '| check | precision | max rel err | max abs err | tolerance | result | note |' in md
    assert sum(line.startswith('| ') and '| PASS |' in line for line in md.splitlines()) == len(rows) - 4
    assert 'FAIL' not in md and 'ERROR' not in md and '## Speed and memory' not in md
    assert f'values (this device vs float64 cpu): {len(rows) - 4} PASS, 4 n/a' in proc.stdout


@pytest.fixture
def gpu_check(repo_root, monkeypatch):
    """The script's module, imported as the script imports its neighbours (its folder first on the path)."""
    from mmengine.logging import MMLogger
    monkeypatch.syspath_prepend(osp.join(repo_root, 'tools', 'benchmark'))
    for name in ('gpu_check', 'common'):
        monkeypatch.delitem(sys.modules, name, raising=False)
    logger = MMLogger.get_instance('mmengine')
    level = logger.level
    logger.setLevel(logging.WARNING)  # as main() does: no init_weights / paramwise lines
    yield importlib.import_module('gpu_check')
    logger.setLevel(level)


def context(gpu_check):
    ctx = gpu_check.Context(torch.device('cpu'), dict(gpu_check.SIZES['quick']), True, time.monotonic() + 300)
    ctx.section = 'values'
    return ctx


def results(ctx):
    return {r['metric']: r['result'] for r in ctx.rows}


def test_nt_xent_gradient_off_by_1e_3_fails(gpu_check, monkeypatch):
    """dL/dz 0.1 % too large (plain and chunked): both gradient rows FAIL, the loss rows still PASS."""
    from mmsimclr.models.losses import nt_xent_loss
    backward = nt_xent_loss._NTXentFunction._backward

    def wrong(ctx, grad_out):
        grad_a, grad_c, *rest = backward(ctx, grad_out)
        return (grad_a * 1.001, grad_c * 1.001, *rest)

    monkeypatch.setattr(nt_xent_loss._NTXentFunction, '_backward', staticmethod(wrong))
    ctx = context(gpu_check)
    gpu_check.values_nt_xent(ctx)
    got = results(ctx)
    assert len(got) == 4
    for metric, result in got.items():
        assert result == ('FAIL' if metric.endswith('dL/dz') else 'PASS'), (metric, ctx.rows)


def test_lars_trust_ratio_off_by_1e_3_fails(gpu_check, monkeypatch):
    from mmsimclr.engine.optimizers.lars import LARS
    step_sizes = LARS._step_sizes

    def wrong(group, params, grads):
        s = step_sizes(group, params, grads)
        return s if isinstance(s, float) else [x * 1.001 for x in s]

    monkeypatch.setattr(LARS, '_step_sizes', staticmethod(wrong))
    ctx = context(gpu_check)
    gpu_check.values_lars(ctx)
    ((metric, result), ) = results(ctx).items()
    assert result == 'FAIL' and ctx.rows[0]['rel_err'] > ctx.rows[0]['tol'], ctx.rows


@pytest.mark.distributed
def test_global_bn_without_the_between_rank_variance_fails(gpu_check, monkeypatch):
    """GlobalBN that averages the ranks' variances but forgets the spread of their means (a plausible bug: each
    rank's statistics look right on their own). Patched before the 2 ranks are forked, so they run it: GlobalBN's
    output, input gradient and running variance FAIL, and so do the loss and gradients of the DDP check."""
    from mmsimclr.models.utils import global_batch_norm

    def wrong(stats, c):
        means, variances, counts = stats[:, :c], stats[:, c:2 * c], stats[:, 2 * c:]
        total = counts.sum()
        return (counts * means).sum(0) / total, (counts * variances).sum(0) / total, total

    monkeypatch.setattr(global_batch_norm, '_combine', wrong)
    ctx = context(gpu_check)
    gpu_check.values_two_ranks(ctx)
    got = results(ctx)
    tag = [m for m in got if m.startswith('GlobalBN')][0].split(':')[0]
    assert got[f'{tag}: output'] == 'FAIL' and got[f'{tag}: input grad'] == 'FAIL', ctx.rows
    assert got[f'{tag}: running mean and var'] == 'FAIL', ctx.rows
    ddp = {m.split(': ')[1]: r for m, r in got.items() if m.startswith('DDP')}
    assert ddp['loss'] == 'FAIL' and ddp['gradients, median tensor'] == 'FAIL', ctx.rows


def test_a_fail_or_an_error_row_makes_the_exit_status_1(gpu_check, monkeypatch, tmp_path):
    """A check whose value is off FAILs, a check that raises is an ERROR row (and the next check still runs); both
    reach the table, the Markdown and the JSON, and main() returns 1."""
    def off(ctx):
        ctx.check('off by 1e-3', 'fp32', gpu_check.errors_of({'x': (torch.ones(3) * 1.001, torch.ones(3))}), 1e-5)

    def raises(ctx):
        raise RuntimeError('gloo cannot all_gather CUDA tensors here')

    def nan(ctx):
        ctx.check('nan', 'fp32', gpu_check.errors_of({'x': (torch.tensor([1.0, float('nan')]), torch.ones(2))}), 1)

    monkeypatch.setattr(gpu_check, 'VALUE_CHECKS', [('off', off), ('boom', raises), ('nan', nan)])
    out = tmp_path / 'fail.md'
    assert gpu_check.main(['--device', 'cpu', '--quick', '--sections', 'values', '--out', str(out)]) == 1
    report = json.loads(out.with_suffix('.json').read_text())
    assert [(r['metric'], r['result']) for r in report['rows']] == [('off by 1e-3', 'FAIL'), ('boom: -', 'ERROR'),
                                                                    ('nan', 'FAIL')]
    assert report['rows'][1]['note'] == 'RuntimeError: gloo cannot all_gather CUDA tensors here'
    assert list(report['environment']['values'].items()) == [('FAIL', 2), ('ERROR', 1)]
    md = out.read_text()
    assert '| off by 1e-3 | fp32 | 1.00e-03 | 1.00e-03 | 1.00e-05 | FAIL |' in md
    assert '| boom: - |  |  |  |  | ERROR | RuntimeError: gloo cannot all_gather CUDA tensors here |' in md
    # a check within its tolerance: exit status 0
    monkeypatch.setattr(gpu_check, 'VALUE_CHECKS', [('ok', lambda ctx: ctx.check('ok', 'fp32', (0.0, 0.0, ''), 1e-5))])
    assert gpu_check.main(['--device', 'cpu', '--quick', '--sections', 'values']) == 0


def test_errors_are_relative_to_the_reference_norm(gpu_check):
    ref = torch.tensor([3.0, 4.0])
    rel, abs_err, worst = gpu_check.errors_of({'a': (torch.tensor([3.0, 4.5]), ref)})
    assert (rel, abs_err, worst) == (pytest.approx(0.1), pytest.approx(0.5), '')  # one pair: no name
    assert gpu_check.errors_of({'zero': (torch.zeros(2), torch.zeros(2))}) == (0.0, 0.0, '')
    rel, _, worst = gpu_check.errors_of({'ok': (ref, ref), 'inf': (torch.ones(2), torch.zeros(2))})
    assert rel == float('inf') and worst == 'inf'
    # the floor: a tensor far below the model's RMS size is measured against 1 % of it
    big, tiny = torch.ones(100), torch.full((4, ), 1e-6)
    rel, _, worst = gpu_check.errors_of({'big': (big, big), 'tiny': (tiny * 2, tiny)}, floor=1e-2)
    rms = (100 / 104)**0.5  # of all the references, per element
    assert worst == 'tiny' and rel == pytest.approx(1e-6 * 2 / (1e-2 * rms * 2), rel=1e-6)


def test_fp16_rows_rerun_the_steps_the_loss_scaler_skips(gpu_check, monkeypatch):
    """A GPU below compute capability 8.0 gets fp16 + a dynamic loss scaler from ``--amp``: at the initial scale
    (2**16) the first steps overflow and are skipped, so the check runs the step again on the same batch (the
    weights unchanged) and compares the first real one. Here mmengine's AmpOptimWrapper runs on the CPU (its
    GPU assertion, GradScaler and autocast switched to the CPU, as in tests/test_engine/test_never_run_paths.py)."""
    import functools

    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_wrapper
    import mmengine.runner.amp as runner_amp
    monkeypatch.setattr(amp_wrapper, 'is_cuda_available', lambda: True)
    monkeypatch.setattr(amp_wrapper, 'GradScaler', functools.partial(torch.amp.GradScaler, 'cpu'))
    monkeypatch.setattr(runner_amp, 'autocast', lambda device_type=None, dtype=None, enabled=True,
                        cache_enabled=None: torch.autocast('cpu', dtype=dtype, enabled=enabled))
    fp16 = dict(gpu_check.VALUE_OPTIM, type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
    monkeypatch.setattr(gpu_check, 'values_amp_cfg', lambda ctx: fp16)
    ctx = context(gpu_check)
    gpu_check.values_train_step(ctx)
    rows = {r['metric'].split(': ')[1]: r for r in ctx.rows if r['precision'] == 'fp16'}
    assert sorted(rows) == ['BN running stats', 'loss', 'update, median tensor', 'update, worst tensor']
    skips = int(re.search(r'(\d+) steps skipped', rows['loss']['note']).group(1))
    assert skips >= 1 and f'loss scale 65536 -> {65536 // 2**skips}' in rows['loss']['note']  # measured: 2 skips
    for what in ('loss', 'update, median tensor', 'update, worst tensor'):
        assert rows[what]['result'] == 'PASS', rows[what]
    assert rows['BN running stats']['result'] == 'n/a'  # updated by the skipped steps' forward passes too
