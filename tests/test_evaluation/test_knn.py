"""Weighted kNN classifier against a brute-force reference, and the dataset derivation it is fed by."""
import math

import pytest
import torch

from mmsimclr.evaluation.embedding import build_subset, derive_dataset_cfg
from mmsimclr.evaluation.knn import knn_predict, knn_top1


def brute_force_scores(train, labels, query, num_classes, k, t):
    """One query at a time, plain Python: cosine similarities, sort, k best, add exp(sim / t) to their class."""
    out = []
    for q in query.tolist():
        sims = []
        for x, y in zip(train.tolist(), labels.tolist()):
            dot = sum(a * b for a, b in zip(q, x))
            nq, nx = math.sqrt(sum(a * a for a in q)), math.sqrt(sum(b * b for b in x))
            sims.append((dot / (nq * nx), y))
        sims.sort(key=lambda s: -s[0])
        scores = [0.0] * num_classes
        for s, y in sims[:k]:
            scores[y] += math.exp(s / t)
        out.append(scores)
    return torch.tensor(out)


@pytest.mark.parametrize('k,t', [(1, 0.1), (7, 0.1), (20, 0.5), (500, 0.07)])
def test_knn_matches_brute_force(k, t):
    g = torch.Generator().manual_seed(k)
    train = torch.randn(60, 8, generator=g) * 3  # unnormalised on purpose
    labels = torch.randint(0, 4, (60, ), generator=g)
    query = torch.randn(25, 8, generator=g)
    got = knn_predict(train, labels, query, 4, k=k, temperature=t, chunk_size=7)  # several chunks
    ref = brute_force_scores(train, labels, query, 4, min(k, 60), t)
    assert got.shape == (25, 4)
    torch.testing.assert_close(got, ref.float(), rtol=1e-4, atol=1e-4)
    acc = knn_top1(train, labels, query, torch.zeros(25, dtype=torch.long), 4, k, t)
    assert acc == pytest.approx(float((ref.argmax(1) == 0).float().mean() * 100))


def test_knn_weighting_beats_majority():
    # 3 far neighbours of class 1 outvote 1 close neighbour of class 0 with a flat vote, not with exp(sim / 0.1)
    train = torch.tensor([[1.0, 0.0], [0.2, 1.0], [0.2, -1.0], [0.1, 1.0]])
    labels = torch.tensor([0, 1, 1, 1])
    query = torch.tensor([[1.0, 0.05]])
    assert knn_predict(train, labels, query, 2, k=4, temperature=0.1).argmax(1).item() == 0
    assert knn_predict(train, labels, query, 2, k=4, temperature=100.0).argmax(1).item() == 1


def test_knn_separable_clusters_and_errors():
    centres = torch.eye(5) * 10
    train = centres.repeat_interleave(20, 0) + torch.randn(100, 5) * 0.1
    labels = torch.arange(5).repeat_interleave(20)
    test = centres.repeat_interleave(4, 0) + torch.randn(20, 5) * 0.1
    assert knn_top1(train, labels, test, torch.arange(5).repeat_interleave(4), k=10) == 100.0
    assert knn_top1(train, labels, test, (torch.arange(5).repeat_interleave(4) + 1) % 5, k=10) == 0.0
    with pytest.raises(ValueError, match='same D'):
        knn_predict(train, labels, torch.randn(3, 4))
    with pytest.raises(ValueError, match='train_labels'):
        knn_predict(train, labels[:5], test)


def test_derive_dataset_cfg_folder_and_split():
    folder = dict(type='CustomDataset', data_root='d/', data_prefix='train',
                  pipeline=[dict(type='LoadImageFromFile'), dict(type='MultiView', num_views=2, transforms=[[]]),
                            dict(type='PackInputs')])
    test = derive_dataset_cfg(folder, 'test')
    assert test['data_prefix'] == 'test' and test['data_root'] == 'd/'
    assert [t['type'] for t in test['pipeline']] == ['LoadImageFromFile', 'PackInputs']
    assert derive_dataset_cfg(dict(folder, data_prefix='imgs/train'), 'test')['data_prefix'] == 'imgs/test'
    assert derive_dataset_cfg(dict(folder, data_prefix='test'), 'train')['data_prefix'] == 'train'
    cifar = dict(type='CIFAR10', data_root='c/', split='train', pipeline=[dict(type='PackInputs')])
    assert derive_dataset_cfg(cifar, 'test')['split'] == 'test'
    wrapped = dict(type='RepeatDataset', times=2, dataset=folder)
    assert derive_dataset_cfg(wrapped, 'test')['type'] == 'CustomDataset'
    with pytest.raises(ValueError, match='test_dataset=dict'):
        derive_dataset_cfg(dict(folder, data_prefix='images'), 'test')


def test_missing_folder_error_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere does not exist.*data_root=PATH'):
        build_subset(dict(type='CustomDataset', data_root=str(tmp_path / 'nowhere'), data_prefix='train'), None)
    (tmp_path / 'data').mkdir()
    with pytest.raises(FileNotFoundError, match='data/train does not exist'):
        build_subset(dict(type='CustomDataset', data_root=str(tmp_path / 'data'), data_prefix='train'), None)
