"""Training on an unlabelled folder from its data root alone: the label-free measures in scalars.json, their PNG,
the kNN monitor's skip (never the end of a run), and the logged RankMe against a direct computation."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.shared_setup  # one worker makes the module fixture once

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
# CPU-sized: 1/8 width, one epoch of batch 8, loaders in the main process
SMALL = ['train_cfg.max_epochs=1', 'train_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False', 'model.backbone.base_channels=8',
         'model.backbone.stem_channels=8', 'model.neck.hid_channels=32', 'model.neck.out_channels=16',
         'custom_hooks.0.num_workers=0', 'custom_hooks.0.batch_size=8']


def run(args):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    proc = subprocess.run([sys.executable, 'tools/train.py'] + args, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=400)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


def scalar_rows(work_dir):
    files = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert len(files) == 1
    return [json.loads(line) for line in open(files[0])]


@pytest.fixture(scope='module')
def folder_run(mixed_image_folder, tmp_path_factory):
    """The packaged ResNet-50 folder config given only the data root (plus CPU-sized options)."""
    root, info = mixed_image_folder
    work = str(tmp_path_factory.mktemp('folder_run'))
    out = run(['simclr_r50_1xb256-coslr-200e_folder', '--work-dir', work, '--cfg-options',
               f'train_dataloader.dataset.data_root={root}', 'train_dataloader.dataset.holdout_max_fraction=0.3',
               'model.neck.in_channels=256',
               # every image is read (by training or by the monitor), so the broken one is always named
               'train_dataloader.drop_last=False'] + SMALL)
    return work, out, root, info


def test_folder_trains_from_its_root_alone(folder_run):
    work, out, root, info = folder_run
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    listed = open(osp.join(work, 'file_list.txt')).read().splitlines()[1:]  # listed once, kept with the work dir
    assert sorted(listed) == sorted(info['images'] + info['broken'])
    assert 'broken.jpg' in out  # named when skipped


def test_label_free_measures_are_logged_and_drawn(folder_run):
    work, out, _, _ = folder_run
    rows = [r for r in scalar_rows(work) if 'labelfree/rankme' in r]
    assert [r['labelfree/epoch'] for r in rows] == [0, 1]
    for r in rows:
        assert 1.0 <= r['labelfree/rankme'] <= r['labelfree/rankme_max']
        assert 0.0 <= r['labelfree/alignment'] <= 4.0
        assert -4 * 2.0 <= r['labelfree/uniformity'] <= 0.0
        assert 0.0 <= r['labelfree/contrast_acc'] <= 100.0
    assert 'Epoch(label-free) [1]  rankme:' in out
    with open(osp.join(work, 'label_free_metrics.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    history = torch.load(osp.join(work, 'epoch_1.pth'), weights_only=False)['meta']['label_free_history']
    assert [r['epoch'] for r in history] == [0, 1]  # the checkpoint carries its own epoch's measurement


def test_logged_rankme_equals_a_direct_computation(folder_run):
    work, _, root, _ = folder_run
    from mmsimclr.apis import extract_features, get_model
    from mmsimclr.datasets import UnlabeledImageFolder
    from mmsimclr.evaluation.label_free import rankme
    ds = UnlabeledImageFolder(data_root=root, split='holdout', holdout=2000, holdout_max_fraction=0.3)
    held = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    assert len(held) == 7
    model = get_model(osp.join(work, 'epoch_1.pth'), device='cpu')
    feats = extract_features(model, [p for p in held if not p.endswith('broken.jpg')], progress=False)['feat']
    logged = [r for r in scalar_rows(work) if r.get('labelfree/epoch') == 1][0]['labelfree/rankme']
    assert logged == pytest.approx(rankme(torch.from_numpy(feats)), rel=1e-4)


def test_knn_monitor_is_skipped_in_a_cifar_config_on_an_unlabelled_folder(mixed_image_folder, tmp_path):
    """The CIFAR-10 config pointed at a folder without train/test splits: one log line, training and checkpoints
    go on (it used to stop the run at the end of the first epoch with no checkpoint)."""
    root, _ = mixed_image_folder
    work = str(tmp_path / 'cifar_cfg')
    out = run(['simclr_r18_1xb512-coslr-200e_cifar10', '--work-dir', work, '--cfg-options',
               f'train_dataloader.dataset.data_root={root}', "train_dataloader.dataset.data_prefix=''",
               'model.neck.in_channels=64', 'default_hooks.checkpoint.interval=1'] + SMALL)
    assert out.count("KNNMonitorHook: skipped for this run: the training data has no 'test' split") == 1
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))


def test_collapse_rule():
    from mmsimclr.engine.hooks import LabelFreeMonitorHook
    hook = LabelFreeMonitorHook()
    row = dict(epoch=1, rankme=40.0, rankme_max=128.0, uniformity=-3.0)
    hook.history = [dict(row, epoch=0, rankme=1.5), row]
    assert hook.collapse_warnings(row) == []  # epoch 0 (random weights) does not count
    assert hook.collapse_warnings(dict(row, epoch=0, rankme=1.0)) == []
    assert 'collapsed onto a few directions' in hook.collapse_warnings(dict(row, epoch=2, rankme=1.9))[0]
    hook.history.append(dict(row, epoch=2, rankme=100.0))
    assert 'dimensional collapse' in hook.collapse_warnings(dict(row, epoch=3, rankme=45.0))[0]
    assert 'bunched together' in hook.collapse_warnings(dict(row, epoch=3, rankme=90.0, uniformity=-0.5))[0]


def test_report_tool_tabulates_the_run_and_correlates_with_knn(folder_run, capsys):
    from tools.analysis import label_free_report as report
    work = folder_run[0]
    rows = report.epoch_rows(report.log_dir_of(work))
    logged = [r for r in scalar_rows(work) if 'labelfree/rankme' in r]
    assert [r['epoch'] for r in rows] == [0, 1]
    assert [r['rankme'] for r in rows] == [r['labelfree/rankme'] for r in logged]
    assert rows[0]['loss'] is None and rows[1]['loss'] > 0 and rows[1]['knn'] is None
    report.main([work, '--png', osp.join(work, 'again.png')])
    out = capsys.readouterr().out
    assert out.startswith('| epoch | loss | RankMe |') and '\n| 1 | ' in out and 'Spearman' not in out
    synthetic = [dict(epoch=e, rankme=r, alignment=a, uniformity=-e, contrast_acc=c, loss=None, knn=k)
                 for e, r, a, c, k in [(0, 5, .1, 1, 20), (1, 9, .5, 4, 30), (2, 12, .4, 6, 35), (3, 11, .3, 7, 36)]]
    rho = report.spearman(synthetic)
    assert rho['contrast_acc'] == pytest.approx(1.0) and rho['uniformity'] == pytest.approx(-1.0)
    assert rho['rankme'] == pytest.approx(0.8)
