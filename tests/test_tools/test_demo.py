"""tools/demo.py end to end on the tiny image folder (the real demo runs the same code on CIFAR-10): a time budget
that stops training early still leaves the final model, and the commands the summary prints run on it."""
import json
import os
import os.path as osp
import shlex
import subprocess
import sys
import tarfile

import pytest

pytestmark = pytest.mark.shared_setup  # one worker makes the module fixture once

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def demo_run(tiny_data, tmp_path_factory):
    from tools.demo import main
    tmp = tmp_path_factory.mktemp('demo')
    archive = str(tmp / 'tiny.tar.gz')
    with tarfile.open(archive, 'w:gz') as tar:  # same layout as cifar10-jpeg.tar.gz: cifar10/{train,test}/...
        tar.add(tiny_data, arcname='cifar10')
    work = str(tmp / 'work')
    # a budget no epoch fits in: training stops after epoch 1 of 3 (a busy machine), the kNN interval (2) and the
    # checkpoint interval (3) never fall on it
    result = main(['--data', archive, '--work-dir', work, '--train-per-class', '12', '--test-per-class', '8',
                   '--epochs', '3', '--width', '8', '--batch-size', '24', '--knn-interval', '2', '--workers', '0',
                   '--max-minutes', '1e-6'])
    return work, result


@pytest.mark.slow
def test_demo_stopped_early_keeps_its_model_and_reports_from_the_run(demo_run):
    import torch
    from PIL import Image
    work, r = demo_run
    assert (r['epochs'], r['planned_epochs'], r['train_images'], r['test_images']) == (1, 3, 48, 32)
    assert r['checkpoint'] == osp.join(work, 'epoch_1.pth') and osp.isfile(r['checkpoint'])
    assert torch.load(r['checkpoint'], map_location='cpu', weights_only=False)['meta']['epoch'] == 1
    saved = json.load(open(osp.join(work, 'demo_results.json')))
    assert [e for e, _ in saved['knn_history']] == [0, 1]  # random init, and the final model after the early stop
    for key in ('knn_top1_random_init', 'knn_top1_simclr', 'linear_top1_random_init', 'linear_top1_simclr'):
        assert 0 <= saved[key] <= 100
        assert abs(saved[key] * 32 / 100 - round(saved[key] * 32 / 100)) < 0.01  # 32 test images
    assert saved['knn_top1_simclr'] == pytest.approx(saved['knn_history'][-1][1], abs=0.01)
    with Image.open(osp.join(work, 'demo_curves.png')) as img:
        assert img.format == 'PNG' and img.size[0] > 500
    # the subset is linked, class-balanced
    train = osp.join(work, 'data', 'train')
    assert sorted(len(os.listdir(osp.join(train, c))) for c in os.listdir(train)) == [12] * 4


@pytest.mark.slow
def test_demo_printed_commands_run(demo_run, tmp_path):
    work, r = demo_run
    out = tmp_path / 'knn.json'
    argv = shlex.split(r['commands']['knn_eval'])
    assert argv[:2] == ['python', 'tools/analysis/knn_eval.py'] and argv[-1] == r['checkpoint']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable] + argv[1:] + ['--out', str(out), '--no-progress', '--workers', '0'],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    # the same k, T, sets and weights as the run's last kNN evaluation: the same accuracy
    assert (result['num_train'], result['num_test']) == (48, 32)
    assert result['knn_top1'] == pytest.approx(r['knn_top1_simclr'], abs=0.01)
    embed = shlex.split(r['commands']['embed'])
    proc = subprocess.run([sys.executable] + embed[1:], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith('(64,)'), proc.stderr[-3000:]  # width 8: 64-d


def test_demo_rejects_a_wrong_folder(tmp_path):
    from tools.demo import main
    with pytest.raises(FileNotFoundError, match='not a CIFAR-10 image folder'):
        main(['--data', str(tmp_path), '--work-dir', str(tmp_path / 'w')])


def test_demo_flags_change_the_recipe_config_and_nothing_else():
    """Unset flags keep the packaged recipe; --batch-size scales its lr by sqrt(batch ratio); --epochs keeps a tenth
    of warm-up and a cosine that ends at the last epoch; --cfg-options reaches any other key."""
    from mmengine.config import Config

    from mmsimclr.utils.config_path import resolve_config
    from tools.demo import DEMO_CONFIG, build_config, parse_args
    recipe = Config.fromfile(resolve_config(DEMO_CONFIG))
    same = build_config(parse_args([]), 'data/')
    assert same.model == recipe.model and same.optim_wrapper == recipe.optim_wrapper
    assert same.param_scheduler == recipe.param_scheduler and same.train_dataloader.dataset.data_root == 'data/'
    cfg = build_config(parse_args(['--batch-size', str(recipe.train_dataloader.batch_size * 4), '--epochs', '30',
                                   '--cfg-options', 'model.head.temperature=0.7']), 'data/')
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(recipe.optim_wrapper.optimizer.lr * 2, abs=1e-4)
    assert [(s['begin'], s['end']) for s in cfg.param_scheduler] == [(0, 3), (3, 30)]
    assert cfg.param_scheduler[1]['T_max'] == 27 and cfg.train_cfg.max_epochs == 30
    assert cfg.model.head.temperature == 0.7 and recipe.model.head.temperature != 0.7
