"""The class-balanced CIFAR-10 subset of the demo and the quality benchmark, made from an image folder or archive."""
import os
import os.path as osp
import tarfile

import pytest

from mmsimclr.datasets.cifar10_subset import find_folder_root, link_subset, prepare_cifar10_subset


def _listing(root):
    return {split: {c: sorted(os.listdir(osp.join(root, split, c))) for c in os.listdir(osp.join(root, split))}
            for split in ('train', 'test')}


def test_subset_is_balanced_seeded_links_into_the_source(tiny_data, tmp_path):
    a = prepare_cifar10_subset(tiny_data, str(tmp_path / 'a'), 5, 3, seed=1)
    assert a == str(tmp_path / 'a' / 'data')
    listing = _listing(a)
    assert sorted(listing['train']) == sorted(os.listdir(osp.join(tiny_data, 'train')))
    assert {len(f) for f in listing['train'].values()} == {5} and {len(f) for f in listing['test'].values()} == {3}
    for c, files in listing['train'].items():
        for f in files:
            link = osp.join(a, 'train', c, f)
            assert osp.islink(link) and os.readlink(link) == osp.abspath(osp.join(tiny_data, 'train', c, f))
    # the same seed draws the same images; another seed others
    assert _listing(prepare_cifar10_subset(tiny_data, str(tmp_path / 'b'), 5, 3, seed=1)) == listing
    assert _listing(prepare_cifar10_subset(tiny_data, str(tmp_path / 'c'), 5, 3, seed=2)) != listing
    # made afresh: a smaller subset in the same work dir leaves nothing of the first one
    again = prepare_cifar10_subset(tiny_data, str(tmp_path / 'a'), 2, 1, seed=1)
    assert {len(f) for f in _listing(again)['train'].values()} == {2}


def test_archive_is_unpacked_once_next_to_the_work_dir(tiny_data, tmp_path):
    archive = str(tmp_path / 'cifar10-jpeg.tar.gz')
    with tarfile.open(archive, 'w:gz') as tar:  # the shared copy's layout: cifar10/{train,test}/<class>/*
        tar.add(tiny_data, arcname='cifar10')
    subset = prepare_cifar10_subset(archive, str(tmp_path / 'runs' / 'w'), 4, 2)
    unpacked = str(tmp_path / 'runs' / 'cifar10-unpacked')
    assert find_folder_root(unpacked) == osp.join(unpacked, 'cifar10')
    first = sorted(os.listdir(osp.join(subset, 'train')))[0]
    link = osp.join(subset, 'train', first, os.listdir(osp.join(subset, 'train', first))[0])
    assert os.readlink(link).startswith(osp.join(unpacked, 'cifar10', 'train') + os.sep)
    marker = osp.join(unpacked, '.unpacked-cifar10-jpeg.tar.gz')
    stamp = os.stat(marker).st_mtime_ns
    prepare_cifar10_subset(archive, str(tmp_path / 'runs' / 'w2'), 4, 2)
    assert os.stat(marker).st_mtime_ns == stamp  # not unpacked again


def test_bad_data_is_named(tiny_data, tmp_path):
    with pytest.raises(FileNotFoundError, match=f'{tmp_path} is not a CIFAR-10 image folder: expected '):
        prepare_cifar10_subset(str(tmp_path), str(tmp_path / 'w'), 1, 1)
    with pytest.raises(FileNotFoundError, match='nope does not exist'):
        prepare_cifar10_subset(str(tmp_path / 'nope'), str(tmp_path / 'w'), 1, 1)
    (tmp_path / 'x.zip').write_bytes(b'')
    with pytest.raises(ValueError, match=r'x.zip: expected an image folder or a .tar.gz'):
        prepare_cifar10_subset(str(tmp_path / 'x.zip'), str(tmp_path / 'w'), 1, 1)
    with pytest.raises(ValueError, match=r'/train/\w+ has 16 images, fewer than the 17 asked for'):
        link_subset(tiny_data, str(tmp_path / 'sub'), dict(train=17), seed=0)
