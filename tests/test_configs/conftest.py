"""Fixtures of the config tests."""
import os
import os.path as osp

import pytest

from mmsimclr.datasets.label_subsets import balanced_subset, write_with_checksum


@pytest.fixture(scope='module')
def tiny_imagenet(tiny_data, tmp_path_factory):
    """tiny_data laid out like data/imagenet (train/, val/, meta/{train,val}.txt) with stand-ins for the 1% / 10%
    lists: 8 and 16 of the 64 training images (2 and 4 per class), i.e. 1 and 2 iterations of batch 8."""
    root = tmp_path_factory.mktemp('imagenet')
    os.symlink(osp.join(tiny_data, 'train'), root / 'train')
    os.symlink(osp.join(tiny_data, 'test'), root / 'val')
    (root / 'meta').mkdir()
    for split, folder in (('train', 'train'), ('val', 'test')):
        classes = sorted(os.listdir(osp.join(tiny_data, folder)))
        entries = [(f'{c}/{f}', i) for i, c in enumerate(classes)
                   for f in sorted(os.listdir(osp.join(tiny_data, folder, c)))]
        (root / 'meta' / f'{split}.txt').write_text(''.join(f'{p} {label}\n' for p, label in entries))
        if split == 'train':
            write_with_checksum(balanced_subset(entries, 0.125), str(root / 'meta' / 'train_1percent.txt'))
            write_with_checksum(balanced_subset(entries, 0.25), str(root / 'meta' / 'train_10percent.txt'))
    return str(root)
