"""A class-balanced CIFAR-10 subset as an image folder (``train/<class>/*``, ``test/<class>/*``), for the CPU demo
(``tools/demo.py``) and the equal-budget quality benchmark (``tools/benchmark/quality_cifar10.py``).

The source is CIFAR-10 as an image folder, the ``cifar10-jpeg.tar.gz`` archive of one (unpacked once), or, without
either, mmpretrain's ``CIFAR10`` dataset (downloaded; needs internet). The subset is ``per_class[split]`` images of
every class, drawn with ``numpy.random.default_rng(seed)`` (the same seed draws the same images), symlinked from
the folder or written as PNG from the download, into a fresh destination folder (a config's ``data_root``).
"""
import os
import os.path as osp
import shutil
import tarfile
from typing import Dict, Optional

ARCHIVE_SUFFIXES = ('.tar.gz', '.tgz', '.tar')


def find_folder_root(path: str) -> str:
    """The folder under ``path`` (itself, or ``cifar10/``) that holds ``train/`` and ``test/``.

    Raises:
        FileNotFoundError: neither holds both; the message names the layout expected.
    """
    for cand in (path, osp.join(path, 'cifar10')):
        if osp.isdir(osp.join(cand, 'train')) and osp.isdir(osp.join(cand, 'test')):
            return cand
    raise FileNotFoundError(f'{path} is not a CIFAR-10 image folder: expected {path}/train/<class>/* and '
                            f'{path}/test/<class>/* (or the same under {path}/cifar10/). Pass such a folder or '
                            'the cifar10-jpeg.tar.gz archive of one.')


def unpack_archive(archive: str, dest: str) -> str:
    """Unpack ``archive`` (.tar.gz) into ``dest`` once (a marker file records completion, so an interrupted unpack
    is redone); returns the image-folder root inside it (:func:`find_folder_root`)."""
    marker = osp.join(dest, '.unpacked-' + osp.basename(archive))
    if not osp.exists(marker):
        print(f'unpacking {archive} into {dest} ...', flush=True)
        os.makedirs(dest, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter='data')  # no absolute paths, links out of dest or device files
        open(marker, 'w').close()
    return find_folder_root(dest)


def link_subset(src_root: str, dst_root: str, per_class: Dict[str, int], seed: int) -> str:
    """Symlink ``per_class[split]`` random images of every class of ``src_root/{split}/<class>/*`` into
    ``dst_root/{split}/<class>/`` (``dst_root`` is emptied first); returns ``dst_root``.

    Raises:
        ValueError: a class has fewer images than asked for (names the folder and both counts).
    """
    import numpy as np
    if osp.isdir(dst_root):
        shutil.rmtree(dst_root)
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        classes = sorted(d for d in os.listdir(osp.join(src_root, split)) if osp.isdir(osp.join(src_root, split, d)))
        for c in classes:
            files = sorted(os.listdir(osp.join(src_root, split, c)))
            if len(files) < n:
                raise ValueError(f'{src_root}/{split}/{c} has {len(files)} images, fewer than the {n} asked for')
            os.makedirs(osp.join(dst_root, split, c))
            for f in sorted(rng.choice(files, size=n, replace=False)):
                os.symlink(osp.abspath(osp.join(src_root, split, c, f)), osp.join(dst_root, split, c, f))
    return dst_root


def export_cifar10_subset(download_root: str, dst_root: str, per_class: Dict[str, int], seed: int) -> str:
    """Download CIFAR-10 with mmpretrain's ``CIFAR10`` into ``download_root`` and write ``per_class[split]`` random
    images of every class as PNG into ``dst_root/{split}/<class name>/`` (emptied first); returns ``dst_root``."""
    import numpy as np
    from mmpretrain.datasets import CIFAR10
    from PIL import Image
    if osp.isdir(dst_root):
        shutil.rmtree(dst_root)
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        try:
            ds = CIFAR10(data_root=download_root, split=split, download=True, pipeline=[])
        except Exception as e:
            raise RuntimeError(f'Could not download CIFAR-10 into {download_root} ({e}). Without internet pass a '
                               'local copy: make demo DATA=path/to/cifar10-jpeg.tar.gz (or an image folder)') from e
        labels = np.array([ds.get_data_info(i)['gt_label'] for i in range(len(ds))])
        for c, name in enumerate(ds.metainfo['classes']):
            os.makedirs(osp.join(dst_root, split, name))
            for i in sorted(rng.choice(np.flatnonzero(labels == c), size=n, replace=False)):
                img = ds.get_data_info(int(i))['img']  # HWC uint8 RGB array from the pickles
                Image.fromarray(img).save(osp.join(dst_root, split, name, f'{i:05d}.png'))
    return dst_root


def prepare_cifar10_subset(data: Optional[str], work_dir: str, train_per_class: int, test_per_class: int,
                           seed: int = 0, download_root: str = osp.join('data', 'cifar10-py')) -> str:
    """The balanced subset in ``work_dir/data`` (made afresh); returns that folder.

    Args:
        data: CIFAR-10 as an image folder (itself or its ``cifar10/`` holding ``train/`` and ``test/``), or a
            ``.tar.gz`` / ``.tgz`` / ``.tar`` of one (unpacked once into ``cifar10-unpacked/`` next to
            ``work_dir``); None downloads mmpretrain's CIFAR10 into ``download_root``.
        work_dir: the run's folder; the subset goes to ``work_dir/data``.
        train_per_class, test_per_class: images per class of each split.
        seed: which images (numpy ``default_rng``).

    Raises:
        FileNotFoundError: ``data`` does not exist or is not a CIFAR-10 image folder.
        ValueError: ``data`` is a file but not an archive, or a class has too few images.
    """
    per_class = dict(train=train_per_class, test=test_per_class)
    subset = osp.join(work_dir, 'data')
    if data is None:
        return export_cifar10_subset(download_root, subset, per_class, seed)
    if not osp.exists(data):
        raise FileNotFoundError(f'CIFAR-10 data {data} does not exist (absolute: {osp.abspath(data)}); pass an '
                                'image folder or cifar10-jpeg.tar.gz')
    if osp.isfile(data):
        if not data.endswith(ARCHIVE_SUFFIXES):
            raise ValueError(f'CIFAR-10 data {data}: expected an image folder or a .tar.gz archive of one')
        src = unpack_archive(data, osp.join(osp.dirname(osp.abspath(work_dir)), 'cifar10-unpacked'))
    else:
        src = find_folder_root(data)
    return link_subset(src, subset, per_class, seed)
