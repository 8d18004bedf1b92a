"""config_check.check_dataset (also what evaluation's build_subset checks): images are counted with the endings the
dataset class itself lists; datasets that download by default are not reported missing."""
import cv2
import numpy as np

from mmsimclr.utils.config_check import check_dataset


def test_image_endings_are_the_dataset_classes(tmp_path):
    (tmp_path / 'train' / 'cat').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'train' / 'cat' / 'a.webp'), np.zeros((4, 4, 3), np.uint8))
    cfg = dict(type='CustomDataset', data_root=str(tmp_path), data_prefix='train')
    problems = check_dataset(cfg)  # mmpretrain's CustomDataset does not list .webp files
    assert len(problems) == 1 and 'holds no images' in problems[0]
    assert check_dataset(dict(cfg, extensions=('.WEBP', ))) == []


def test_downloading_dataset_not_reported(tmp_path):
    assert check_dataset(dict(type='mmpretrain.CIFAR10', data_root=str(tmp_path / 'cifar'))) == []
    problems = check_dataset(dict(type='mmpretrain.CIFAR10', data_root=str(tmp_path / 'cifar'), download=False))
    assert len(problems) == 1 and 'cifar does not exist' in problems[0]
