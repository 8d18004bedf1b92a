"""Listing an image-folder dataset (``root/<class>/**/<image>``) as file paths and integer labels."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

#: File name endings (lower case) of the images that image folders, ``inference_model`` and ``extract_features``
#: pick up.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')


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
    found = sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)))
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
        for folder, _, files in sorted(os.walk(osp.join(root, name))):
            for f in sorted(files):
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(osp.join(folder, f))
                    labels.append(index[name])
    if not paths:
        raise FileNotFoundError(f'Image folder {root} holds no images in class folders ({", ".join(IMAGE_EXTENSIONS)})'
                                f'; expected {root}/<class>/<image>')
    return paths, labels, list(classes)
