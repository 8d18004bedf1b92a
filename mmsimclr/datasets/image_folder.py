"""Listing image folders: every image file under a root (any nesting), and the class-folder layout
(``root/<class>/**/<image>``) as file paths and integer labels.

One listing rule for the whole package (training's :class:`~mmsimclr.datasets.UnlabeledImageFolder`, the class
folders of :func:`scan_image_folder`, the folders handed to ``inference_model`` / ``extract_features``):

* files whose name ends with one of :data:`IMAGE_EXTENSIONS`, in any letter case (``.JPG``, ``.Png``);
* hidden files and folders (name starting with ``.``: ``.DS_Store``, ``.ipynb_checkpoints``, ``._x.jpg`` of macOS
  archives) and every other file are ignored;
* symbolic links are followed, each real folder is visited once (a link back to a parent cannot loop);
* paths come back sorted, so the order (and anything drawn from it with a seed) is the same on every machine.

Written on ``os.scandir`` rather than ``glob``/``os.walk``: one ``stat``-free pass over each folder (the file type
comes with the directory entry), which lists 100k files in well under a second (``tools/benchmark/folder_scan.py``).
"""
import os
import os.path as osp
import warnings
from typing import List, Optional, Sequence, Tuple

#: File name endings (lower case) of the images that image folders, ``inference_model`` and ``extract_features``
#: pick up.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')


def list_images(root: str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[str]:
    """Paths of the image files under ``root``, relative to it (``/``-separated), sorted; see the module docstring
    for the rule. A sub-folder that cannot be read (permissions) is skipped with a warning that names it.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'Image folder {root} does not exist (absolute: {osp.abspath(root)})')
    suffixes = tuple(e.lower() for e in extensions)
    found: List[str] = []
    seen = set()
    stack = ['']
    while stack:
        rel = stack.pop()
        folder = osp.join(root, rel) if rel else root
        real = osp.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            warnings.warn(f'Skipped folder {folder}: cannot list it ({e.strerror or e})', stacklevel=2)
            continue
        for entry in entries:
            name = entry.name
            if name.startswith('.'):
                continue
            path = f'{rel}/{name}' if rel else name
            try:
                if entry.is_dir():
                    stack.append(path)
                elif name.lower().endswith(suffixes) and entry.is_file():
                    found.append(path)
            except OSError:  # a dangling link or an entry removed while listing
                continue
    found.sort()
    return found


def scan_image_folder(root: str, classes: Optional[Sequence[str]] = None) -> Tuple[List[str], List[int], List[str]]:
    """``(paths, labels, classes)`` of the images under ``root``: ``classes`` are its sub-folders, sorted (or the
    given list, e.g. the training split's, so that a test split maps to the same labels); each image's label is
    the index of its class folder. Paths are sorted within each class.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no class folder with images.
        ValueError: ``root`` has a class folder that is not in the given ``classes``.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'Image folder {root} does not exist; expected {root}/<class>/<image> files')
    found = sorted(d for d in os.listdir(root) if not d.startswith('.') and osp.isdir(osp.join(root, d)))
    if classes is None:
        classes = found
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise ValueError(f'{root} has class folders that the training split lacks: {", ".join(unknown[:5])}; '
                             'both splits must use the same class names')
    index = {name: i for i, name in enumerate(classes)}
    paths, labels = [], []
    for name in found:
        folder = osp.join(root, name)
        for rel in list_images(folder):
            paths.append(osp.join(folder, rel))
            labels.append(index[name])
    if not paths:
        raise FileNotFoundError(f'Image folder {root} holds no images in class folders ({", ".join(IMAGE_EXTENSIONS)})'
                                f'; expected {root}/<class>/<image>')
    return paths, labels, list(classes)
