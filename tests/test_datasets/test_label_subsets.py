"""Label subsets: balanced counts, seeded reproducibility, sha256 records, published-list conversion, the tool."""
import hashlib
import json
import os.path as osp

import numpy as np
import pytest

from mmsimclr.datasets.label_subsets import (balanced_subset, class_quotas, from_published_list,
                                             read_annotation_list, write_with_checksum)
from tools.dataset_converters.make_label_subsets import main as make_subsets


def imagenet_like(class_sizes):
    """Entries named like ImageNet's: ``n<wnid>/n<wnid>_<i>.JPEG``, label = class index."""
    return [(f'n{c:08d}/n{c:08d}_{i}.JPEG', c) for c, size in enumerate(class_sizes) for i in range(size)]


@pytest.fixture(scope='module')
def imagenet_sizes():
    # ImageNet-1k's shape: 1000 classes of 732..1300 images, 1,281,167 in all
    rng = np.random.default_rng(1)
    sizes = np.full(1000, 1300)
    sizes[:300] = rng.integers(732, 1300, 300)
    sizes[0] += 1281167 - sizes.sum()
    assert sizes.sum() == 1281167 and sizes.min() >= 732
    return sizes.tolist()


def test_imagenet_scale_counts(imagenet_sizes):
    quotas = class_quotas(dict(enumerate(imagenet_sizes)), round(0.01 * 1281167), np.random.default_rng(0))
    assert sum(quotas.values()) == 12812
    assert sorted(set(quotas.values())) == [12, 13] and sum(q == 13 for q in quotas.values()) == 812
    quotas = class_quotas(dict(enumerate(imagenet_sizes)), round(0.1 * 1281167), np.random.default_rng(0))
    assert sum(quotas.values()) == 128117 and sorted(set(quotas.values())) == [128, 129]


def test_balanced_subset_counts_and_membership():
    sizes = [40, 7, 25, 33, 60, 12]
    entries = imagenet_like(sizes)
    subset = balanced_subset(entries, 0.1, seed=3)
    assert len(subset) == round(0.1 * sum(sizes)) == 18
    counts = np.bincount([label for _, label in subset], minlength=len(sizes))
    assert counts.tolist() == [3] * 6
    assert set(subset) <= set(entries) and len(set(subset)) == len(subset)
    positions = [entries.index(e) for e in subset]
    assert positions == sorted(positions), 'kept in the order of the full list'


def test_small_classes_give_their_deficit_to_others():
    sizes = [1, 2, 50, 50]
    subset = balanced_subset(imagenet_like(sizes), 0.2, seed=0)  # 21 images, quota 5 or 6 each
    counts = np.bincount([label for _, label in subset]).tolist()
    assert counts[:2] == [1, 2] and sum(counts) == 21 and abs(counts[2] - counts[3]) <= 1


def test_seeded_reproducibility():
    entries = imagenet_like([30] * 10)
    a, b = balanced_subset(entries, 0.1, seed=7), balanced_subset(entries, 0.1, seed=7)
    c = balanced_subset(entries, 0.1, seed=8)
    assert a == b and a != c


def test_sha256_recorded_matches_file(tmp_path):
    entries = imagenet_like([20, 20, 20])
    path = str(tmp_path / 'train_10percent.txt')
    manifest = str(tmp_path / 'label_subsets.json')
    digest = write_with_checksum(balanced_subset(entries, 0.1), path, manifest, dict(seed=0))
    with open(path, 'rb') as f:
        actual = hashlib.sha256(f.read()).hexdigest()
    assert digest == actual
    with open(path + '.sha256') as f:
        assert f.read() == f'{actual}  train_10percent.txt\n'  # sha256sum -c format
    with open(manifest) as f:
        record = json.load(f)['train_10percent.txt']
    assert record['sha256'] == actual and record['images'] == 6 and record['per_class_min'] == 2
    assert read_annotation_list(path) == balanced_subset(entries, 0.1)


def test_published_list_conversion():
    entries = imagenet_like([5, 5, 5])
    names = ['n00000002_3.JPEG', 'n00000000_1.JPEG', '', 'n00000001_4.JPEG']
    assert from_published_list(names, entries) == [entries[13], entries[1], entries[9]]
    with pytest.raises(ValueError, match='not in the full annotation list'):
        from_published_list(['n00000000_99.JPEG'], entries)
    with pytest.raises(ValueError, match='twice'):
        from_published_list(['n00000000_1.JPEG', 'n00000000_1.JPEG'], entries)


def test_read_rejects_a_name_list(tmp_path):
    path = tmp_path / 'names.txt'
    path.write_text('n01440764_10026.JPEG\n')
    with pytest.raises(ValueError, match='relative/path.JPEG label'):
        read_annotation_list(str(path))


def test_tool_draws_and_converts(tmp_path, capsys):
    entries = imagenet_like([100, 100, 100, 100])
    full = tmp_path / 'meta' / 'train.txt'
    full.parent.mkdir()
    full.write_text(''.join(f'{p} {c}\n' for p, c in entries))
    written = make_subsets([str(full), '--seed', '1'])
    out = capsys.readouterr().out
    one, ten = str(tmp_path / 'meta' / 'train_1percent.txt'), str(tmp_path / 'meta' / 'train_10percent.txt')
    assert set(written) == {one, ten}
    assert len(read_annotation_list(one)) == 4 and len(read_annotation_list(ten)) == 40
    for path, digest in written.items():
        with open(path, 'rb') as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest
        assert digest in out
    assert make_subsets([str(full), '--seed', '1']) == written  # same seed, same files
    manifest = json.loads((tmp_path / 'meta' / 'label_subsets.json').read_text())
    assert manifest['train_1percent.txt']['seed'] == 1 and manifest['train_10percent.txt']['fraction'] == 0.1

    published = tmp_path / '1percent.txt'
    published.write_text('n00000003_7.JPEG\nn00000000_0.JPEG\n')
    written = make_subsets([str(full), '--published', str(published), '--out-dir', str(tmp_path / 'pub')])
    (path, digest), = written.items()
    assert osp.basename(path) == 'train_1percent.txt'
    assert read_annotation_list(path) == [('n00000003/n00000003_7.JPEG', 3), ('n00000000/n00000000_0.JPEG', 0)]
