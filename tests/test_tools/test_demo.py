"""tools/demo.py end to end on the tiny image folder (the real demo runs the same code on CIFAR-10)."""
import json
import os
import os.path as osp
import tarfile

import pytest


@pytest.mark.slow
def test_demo_end_to_end_from_archive(tiny_data, tmp_path):
    from PIL import Image

    from tools.demo import main
    archive = str(tmp_path / 'tiny.tar.gz')
    with tarfile.open(archive, 'w:gz') as tar:  # same layout as cifar10-jpeg.tar.gz: cifar10/{train,test}/...
        tar.add(tiny_data, arcname='cifar10')
    work = str(tmp_path / 'work')
    r = main(['--data', archive, '--work-dir', work, '--train-per-class', '12', '--test-per-class', '8',
              '--epochs', '2', '--width', '8', '--batch-size', '24', '--knn-interval', '1', '--workers', '0'])
    assert (r['epochs'], r['train_images'], r['test_images']) == (2, 48, 32)
    saved = json.load(open(osp.join(work, 'demo_results.json')))
    assert [e for e, _ in saved['knn_history']] == [0, 1, 2]
    for key in ('knn_top1_random_init', 'knn_top1_simclr', 'linear_top1_random_init', 'linear_top1_simclr'):
        assert 0 <= saved[key] <= 100
    assert saved['knn_top1_simclr'] == pytest.approx(saved['knn_history'][-1][1], abs=0.01)
    with Image.open(osp.join(work, 'demo_curves.png')) as img:
        assert img.format == 'PNG' and img.size[0] > 500
    # the subset is linked, class-balanced
    assert sorted(len(os.listdir(osp.join(work, 'data', 'train', c))) for c in os.listdir(osp.join(work, 'data',
                                                                                                  'train'))) == [12] * 4


def test_demo_rejects_a_wrong_folder(tmp_path):
    from tools.demo import main
    with pytest.raises(FileNotFoundError, match='not a CIFAR-10 image folder'):
        main(['--data', str(tmp_path), '--work-dir', str(tmp_path / 'w')])
