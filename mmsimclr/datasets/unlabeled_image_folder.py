"""Any folder of images as an unlabelled dataset: what self-supervised pretraining on your own images needs.

``data_root`` (plus an optional ``data_prefix`` sub-folder) is listed with
:func:`~mmsimclr.datasets.image_folder.list_images`: files at the root and at any depth, ``.jpg .jpeg .png .webp
.bmp .tif .tiff .ppm .pgm`` in any letter case; hidden and non-image files are ignored. Decoding is the pipeline's
(``LoadImageColor``: any size, grayscale / RGBA / palette / 16-bit to 8-bit colour; an unreadable file is named in
a warning and another image is drawn).

**The file list is built once.** With ``file_list`` set (``tools/train.py`` sets ``<work_dir>/file_list.txt``),
rank 0 lists the folder and writes the list there (atomically); the other ranks wait at a barrier and read it,
and later runs in the same work dir (a resume, a restart) read it instead of listing again, so the images and the
held-out sample stay the same for the whole run. Loader workers get the list from their parent process, never by
listing. The file starts with a JSON header (root, extensions, count); a list made for another root or other
extensions is ignored and rebuilt. Delete it to pick up images added since.

**Held-out sample.** ``holdout`` images (at most ``holdout_max_fraction`` of the folder) are drawn once with
``seed`` from the sorted list and left out of ``split='train'``; ``split='holdout'`` is exactly those images
(what :class:`~mmsimclr.engine.hooks.LabelFreeMonitorHook` measures on), ``split='all'`` the whole folder.

Samples are ``dict(img_path=...)``: no ``gt_label`` (the kNN monitor skips such data with one log line).
"""
import json
import os.path as osp
from typing import List, Optional, Sequence, Union

import numpy as np
from mmengine import dist
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmsimclr.registry import DATASETS
from mmsimclr.utils.atomic_file import atomic_write_bytes
from .image_folder import IMAGE_EXTENSIONS, list_images

_FILE_LIST_VERSION = 1


def _header(root: str, extensions: Sequence[str], count: int) -> dict:
    return dict(mmsimclr_file_list=_FILE_LIST_VERSION, root=osp.abspath(root), extensions=sorted(extensions),
                count=count)


def read_file_list(path: str, root: str, extensions: Sequence[str]) -> Optional[List[str]]:
    """The relative paths stored in ``path`` if it is a file list of ``root`` with these ``extensions`` and is
    complete; None otherwise (missing, another root, damaged)."""
    try:
        with open(path, encoding='utf-8') as f:
            header = json.loads(f.readline())
            paths = [line.rstrip('\n') for line in f]
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or header != _header(root, extensions, len(paths)):
        return None
    return paths


def write_file_list(path: str, root: str, extensions: Sequence[str], paths: Sequence[str]) -> None:
    """Write ``paths`` (relative to ``root``) with their header, atomically (a reader never sees half a list)."""
    text = json.dumps(_header(root, extensions, len(paths))) + '\n' + ''.join(p + '\n' for p in paths)
    atomic_write_bytes(path, text.encode('utf-8'))


def holdout_indices(num_images: int, holdout: int, max_fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the held-out images: ``min(holdout, floor(max_fraction * num_images))`` of them, drawn
    with ``seed`` (the same folder listing gives the same sample on every machine and every run)."""
    count = min(int(holdout), int(max_fraction * num_images))
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(num_images, size=count, replace=False))


@DATASETS.register_module()
class UnlabeledImageFolder(BaseDataset):
    """Every image under ``data_root/data_prefix``, without labels.

    Args:
        data_root (str): the folder of images (any layout).
        data_prefix (str | dict): a sub-folder of ``data_root`` to read instead (``''``: the root itself).
        pipeline (list): the transforms of each sample.
        split (str): ``'train'`` (every image but the held-out sample; the default), ``'holdout'`` or ``'all'``.
        holdout (int): size of the held-out sample. Defaults to 0 (none).
        holdout_max_fraction (float): the held-out sample never exceeds this fraction of the folder. Defaults to
            0.1.
        seed (int): seed of the held-out sample. Defaults to 0.
        extensions (sequence of str): file endings that count as images (case-insensitive).
        file_list (str, optional): where the file list is cached (see the module docstring). Defaults to None
            (list the folder in every process that builds the dataset).
        **kwargs: mmengine ``BaseDataset`` options (``indices``, ``serialize_data``, ``lazy_init`` ...).
    """

    SPLITS = ('train', 'holdout', 'all')

    def __init__(self,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 pipeline: Sequence = (),
                 split: str = 'train',
                 holdout: int = 0,
                 holdout_max_fraction: float = 0.1,
                 seed: int = 0,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 file_list: Optional[str] = None,
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'UnlabeledImageFolder: split must be one of {self.SPLITS}, got {split!r}')
        if holdout < 0 or not 0 <= holdout_max_fraction < 1:
            raise ValueError(f'UnlabeledImageFolder: holdout must be >= 0 and holdout_max_fraction in [0, 1), got '
                             f'{holdout} and {holdout_max_fraction}')
        self.split, self.holdout, self.holdout_max_fraction, self.seed = split, holdout, holdout_max_fraction, seed
        self.extensions = tuple(sorted({e.lower() for e in extensions}))
        self.file_list = file_list
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        kwargs.pop('ann_file', None)  # no annotation file: the folder is the list
        super().__init__(ann_file='', data_root=data_root, data_prefix=data_prefix, pipeline=list(pipeline),
                         **kwargs)

    @property
    def folder(self) -> str:
        """The folder listed (``data_root`` joined with ``data_prefix``)."""
        return self.data_prefix['img_path'] or self.data_root

    def _list(self) -> List[str]:
        folder = self.folder
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'UnlabeledImageFolder: image folder {folder} does not exist (absolute: {osp.abspath(folder)}). '
                'Point it at your images with --cfg-options train_dataloader.dataset.data_root=DIR')
        if self.file_list is None:
            return list_images(folder, self.extensions)
        paths = None
        if dist.get_rank() == 0:
            paths = read_file_list(self.file_list, folder, self.extensions)
            if paths is None:
                paths = list_images(folder, self.extensions)
                try:
                    write_file_list(self.file_list, folder, self.extensions, paths)
                except OSError as e:
                    print_log(f'UnlabeledImageFolder: cannot write the file list {self.file_list} ({e}); every '
                              'process lists the folder itself', logger='current', level='WARNING')
                else:
                    print_log(f'UnlabeledImageFolder: listed {len(paths)} images under {folder} into '
                              f'{self.file_list} (delete it to list again)', logger='current')
        dist.barrier()  # rank 0 has written the list (no-op outside distributed runs)
        if paths is None:
            paths = read_file_list(self.file_list, folder, self.extensions)
            if paths is None:
                paths = list_images(folder, self.extensions)
        return paths

    def load_data_list(self) -> List[dict]:
        rel = self._list()
        if not rel:
            raise FileNotFoundError(
                f'UnlabeledImageFolder: no images under {self.folder} (absolute: {osp.abspath(self.folder)}); '
                f'looked for {" ".join(self.extensions)} in any letter case, at any depth, hidden files ignored')
        held = holdout_indices(len(rel), self.holdout, self.holdout_max_fraction, self.seed)
        if self.split == 'holdout':
            keep = held.tolist()
        elif self.split == 'train' and len(held):
            mask = np.ones(len(rel), dtype=bool)
            mask[held] = False
            keep = np.flatnonzero(mask).tolist()
        else:
            keep = range(len(rel))
        if self.split == 'holdout' and not len(keep):
            # mmengine cannot serialise an empty dataset ("need at least one array to concatenate"): say why instead
            raise ValueError(
                f'UnlabeledImageFolder: the held-out sample of {self.folder} is empty: {len(rel)} images hold out '
                f'min(holdout={self.holdout}, {self.holdout_max_fraction:.0%} of them) = 0; add images (at least '
                f'{int(np.ceil(1 / self.holdout_max_fraction)) if self.holdout_max_fraction else "any"} for one '
                'held-out image) or raise holdout_max_fraction')
        folder = self.folder
        return [dict(img_path=osp.join(folder, rel[i])) for i in keep]
