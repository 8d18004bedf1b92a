"""Class-balanced label subsets of an annotation list (the 1% / 10% ImageNet protocols of SimCLR, Table 7).

An annotation list has one ``relative/path.JPEG label`` line per image (mmpretrain's ``ImageNet`` with
``ann_file='meta/train.txt'``). A subset keeps a fraction ``f`` of its ``N`` lines, spread evenly over its ``C``
classes:

    n = round(f * N),  q = n // C,  r = n - q * C
    every class gets q images; r classes (drawn with the seed) get one more;
    a class with fewer images than its quota gives its deficit to the others (most images left first).

The images of each class are then drawn without replacement with ``numpy.random.default_rng(seed)``; written lines
keep the order of the full list. For ImageNet (N = 1,281,167, C = 1000) that is 12 or 13 images per class for 1%
and 128 or 129 for 10%.

:func:`from_published_list` turns the commonly used published subset files (one file name per line, e.g.
``n01440764_10026.JPEG``) into annotation lines, with paths and labels looked up in the full list.

:func:`write_with_checksum` writes a list and records its sha256 next to it (``<file>.sha256``, the format of
``sha256sum``, so ``sha256sum -c`` checks it) and in a json manifest.
"""
import hashlib
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

Entry = Tuple[str, int]  # (relative path, label)


def read_annotation_list(path: str) -> List[Entry]:
    """``[(relative_path, label), ...]`` from an annotation file of ``path label`` lines (blank lines skipped).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line is not ``<path> <integer label>`` (the message names the file and the line).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Annotation list {path} does not exist; for ImageNet it is '
                                'data/imagenet/meta/train.txt ("relative/path.JPEG label" per line)')
    entries = []
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                raise ValueError(f'{path}, line {number}: expected "relative/path.JPEG label", got "{line}". '
                                 'Pass the full annotation list (e.g. meta/train.txt), not a list of file names.')
            entries.append((parts[0], int(parts[1])))
    if not entries:
        raise ValueError(f'Annotation list {path} is empty')
    return entries


def format_annotation_list(entries: Sequence[Entry]) -> str:
    """The text of an annotation file: ``path label`` per line, newline-terminated."""
    return ''.join(f'{p} {label}\n' for p, label in entries)


def class_quotas(class_sizes: Dict[int, int], total: int, rng: np.random.Generator) -> Dict[int, int]:
    """Images per class for a balanced subset of ``total`` images (see the module docstring).

    Args:
        class_sizes: ``{label: number of images}``.
        total: ``n``, the subset size, ``0 <= n <= sum(class_sizes)``.
        rng: draws which classes get the ``r`` extra images.

    Returns:
        ``{label: quota}`` with ``quota <= class_sizes[label]`` and ``sum(quota) == total``; quotas differ by at
        most one between classes that are not exhausted.
    """
    labels = sorted(class_sizes)
    if not 0 <= total <= sum(class_sizes.values()):
        raise ValueError(f'A subset of {total} images cannot be drawn from {sum(class_sizes.values())} images')
    base, extra = divmod(total, len(labels))
    quota = {c: base for c in labels}
    for c in rng.permutation(np.array(labels))[:extra]:
        quota[int(c)] += 1
    deficit = 0
    for c in labels:
        if quota[c] > class_sizes[c]:
            deficit += quota[c] - class_sizes[c]
            quota[c] = class_sizes[c]
    while deficit:  # give the missing images to the classes with the most images left, one each per round
        spare = sorted((c for c in labels if class_sizes[c] > quota[c]), key=lambda c: quota[c] - class_sizes[c])
        for c in spare[:deficit]:
            quota[c] += 1
            deficit -= 1
    return quota


def balanced_subset(entries: Sequence[Entry], fraction: float, seed: int = 0) -> List[Entry]:
    """A class-balanced subset of ``round(fraction * len(entries))`` entries, in the order of ``entries``.

    The same ``entries``, ``fraction`` and ``seed`` always give the same subset.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f'fraction must be in (0, 1], got {fraction} (1% is 0.01)')
    by_class: Dict[int, List[int]] = {}
    for index, (_, label) in enumerate(entries):
        by_class.setdefault(label, []).append(index)
    rng = np.random.default_rng(seed)
    quota = class_quotas({c: len(v) for c, v in by_class.items()}, int(round(fraction * len(entries))), rng)
    chosen = []
    for c in sorted(by_class):
        indices = np.asarray(by_class[c])
        chosen.extend(rng.choice(indices, size=quota[c], replace=False).tolist())
    return [entries[i] for i in sorted(chosen)]


def from_published_list(names: Sequence[str], entries: Sequence[Entry], source: str = 'the published list'
                        ) -> List[Entry]:
    """Annotation entries for published file names (``n01440764_10026.JPEG``), looked up by base name in the
    full list ``entries``; the order of ``names`` is kept.

    Raises:
        ValueError: a name is not in the full list, is listed twice, or two images of the full list share it.
    """
    by_name: Dict[str, Entry] = {}
    clashes = set()
    for entry in entries:
        base = osp.basename(entry[0])
        if base in by_name:
            clashes.add(base)
        by_name[base] = entry
    names = [n.strip() for n in names if n.strip()]
    missing = [n for n in names if osp.basename(n) not in by_name]
    if missing:
        raise ValueError(f'{len(missing)} of the {len(names)} names in {source} are not in the full annotation list '
                         f'(e.g. {", ".join(missing[:3])}); pass the full ImageNet train list (meta/train.txt) that '
                         'the published subset was drawn from')
    ambiguous = sorted(clashes & {osp.basename(n) for n in names})
    if ambiguous:
        raise ValueError(f'{len(ambiguous)} names in {source} match several images of the full list (e.g. '
                         f'{ambiguous[0]}); published lists need unique file names')
    seen, repeated = set(), []
    for n in names:
        if n in seen:
            repeated.append(n)
        seen.add(n)
    if repeated:
        raise ValueError(f'{source} lists {len(repeated)} names twice (e.g. {repeated[0]})')
    return [by_name[osp.basename(n)] for n in names]


def sha256_text(text: str) -> str:
    """Hex sha256 of ``text`` encoded as UTF-8 (what :func:`write_with_checksum` writes)."""
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def sha256_file(path: str) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def write_with_checksum(entries: Sequence[Entry], path: str, manifest: Optional[str] = None,
                        info: Optional[dict] = None) -> str:
    """Write ``entries`` as an annotation file, ``<path>.sha256`` (``<hex>  <name>``), and, when ``manifest`` is
    given, update that json file's entry for ``basename(path)`` with the sha256, counts and ``info``.

    Returns:
        The hex sha256 of the written file.
    """
    text = format_annotation_list(entries)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        f.write(text)
    digest = sha256_text(text)
    with open(path + '.sha256', 'w', encoding='utf-8') as f:
        f.write(f'{digest}  {osp.basename(path)}\n')
    if manifest:
        content = OrderedDict()
        if osp.isfile(manifest):
            with open(manifest, encoding='utf-8') as f:
                content = json.load(f, object_pairs_hook=OrderedDict)
        labels = [label for _, label in entries]
        counts = np.bincount(labels) if labels else np.zeros(0, int)
        present = counts[counts > 0]
        content[osp.basename(path)] = dict(
            sha256=digest, images=len(entries), classes=int(len(present)),
            per_class_min=int(present.min()) if len(present) else 0,
            per_class_max=int(present.max()) if len(present) else 0, **(info or {}))
        with open(manifest, 'w', encoding='utf-8') as f:
            json.dump(content, f, indent=2)
            f.write('\n')
    return digest


def percent_name(fraction: float, prefix: str = 'train') -> str:
    """``0.01 -> 'train_1percent.txt'``, ``0.1 -> 'train_10percent.txt'`` (mmselfsup's file names)."""
    return f'{prefix}_{100 * fraction:g}percent.txt'
