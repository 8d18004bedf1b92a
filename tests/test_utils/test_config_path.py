"""Config names as users type them: files, packaged names (as mim), and one-line errors with close names."""
import os.path as osp

import pytest

from mmsimclr.utils.config_path import (ConfigNotFoundError, close_config_names, config_roots, packaged_configs,
                                        resolve_config, resolve_or_exit)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
R50 = osp.join(ROOT, 'configs', 'simclr_r50_16xb256-coslr-200e_in1k.py')
LINEAR = osp.join(ROOT, 'configs', 'benchmarks', 'resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k.py')


def test_checkout_configs_come_first_and_base_fragments_are_not_names():
    assert config_roots()[0] == osp.join(ROOT, 'configs')
    names = dict(packaged_configs())
    assert names['simclr_r50_16xb256-coslr-200e_in1k'] == R50
    assert names['benchmarks/resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k'] == LINEAR
    assert not [n for n in names if '_base_' in n]


@pytest.mark.parametrize('typed', [
    'simclr_r50_16xb256-coslr-200e_in1k', 'simclr_r50_16xb256-coslr-200e_in1k.py',
    'configs/simclr_r50_16xb256-coslr-200e_in1k.py', './configs/simclr_r50_16xb256-coslr-200e_in1k'])
def test_packaged_name_resolves_from_any_directory(typed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config(typed) == R50


@pytest.mark.parametrize('typed', [
    'benchmarks/resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k',
    'configs/benchmarks/resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k.py',
    'resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k'])
def test_benchmark_names_resolve(typed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config(typed) == LINEAR


def test_an_existing_file_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'simclr_r50_16xb256-coslr-200e_in1k.py').write_text('x = 1\n')
    assert resolve_config('simclr_r50_16xb256-coslr-200e_in1k.py') == 'simclr_r50_16xb256-coslr-200e_in1k.py'


def test_a_missing_absolute_path_is_never_replaced_by_a_packaged_file(tmp_path):
    mine = str(tmp_path / 'mine' / 'simclr_r50_16xb256-coslr-200e_in1k.py')
    with pytest.raises(ConfigNotFoundError) as err:
        resolve_config(mine)
    assert str(err.value).startswith(f'config {mine} does not exist. Did you mean simclr_r50_16xb256-coslr-200e_in1k')


def test_typo_names_the_absolute_path_and_close_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigNotFoundError) as err:
        resolve_config('configs/simclr_r50_16xb256-coslr-200e_in1.py')
    msg = str(err.value)
    assert msg.startswith('config configs/simclr_r50_16xb256-coslr-200e_in1.py does not exist (absolute: '
                          f'{tmp_path}/configs/simclr_r50_16xb256-coslr-200e_in1.py). Did you mean '
                          'simclr_r50_16xb256-coslr-200e_in1k, ')
    assert '\n' not in msg
    assert isinstance(err.value, FileNotFoundError)  # callers catching the old error still do
    close = close_config_names('resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1')
    assert close[:2] == ['benchmarks/resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k',
                         'benchmarks/resnet50_simclr-800e-pre_8xb512-linear-coslr-90e_in1k']
    assert 'simclr_r50_16xb256-coslr-200e_in1k' not in close  # only names that are close


def test_nothing_close_points_at_the_configs_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigNotFoundError) as err:
        resolve_config('nope')
    assert f'config nope does not exist (absolute: {tmp_path}/nope)' in str(err.value)
    assert osp.join(ROOT, 'configs') in str(err.value)


def test_resolve_or_exit_is_one_argparse_style_line(capsys):
    with pytest.raises(SystemExit) as info:
        resolve_or_exit('simclr_r18_1xb16-coslr-2e_tin', prog='train.py')
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('train.py: error: config simclr_r18_1xb16-coslr-2e_tin does not exist')
    assert 'Did you mean simclr_r18_1xb16-coslr-2e_tiny' in err and err.count('\n') == 1
