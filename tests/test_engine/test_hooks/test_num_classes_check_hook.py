"""NumClassesCheckHook: found by name in the mmsimclr scope; stops before training when the head's class count and
the datasets' differ, with the fix in the message."""
from types import SimpleNamespace

import pytest
import torch.nn as nn
from mmengine.registry import HOOKS, DefaultScope

import mmsimclr.engine  # noqa: F401  (the package's registrations, as a config's default_scope triggers them)
from mmsimclr.engine.hooks import NumClassesCheckHook


def fake_runner(head_classes, train_classes, val_classes=None):
    model = nn.Module()
    model.head = SimpleNamespace(num_classes=head_classes)
    loader = lambda classes: SimpleNamespace(dataset=SimpleNamespace(metainfo=dict(classes=classes)))  # noqa: E731
    val = loader(val_classes) if val_classes is not None else None
    return SimpleNamespace(model=model, train_dataloader=loader(train_classes), _val_dataloader=val,
                           val_loop=SimpleNamespace(dataloader=val) if val is not None else None)


def test_built_by_name_in_mmsimclr_scope():
    with DefaultScope.overwrite_default_scope('mmsimclr'):
        assert type(HOOKS.build(dict(type='NumClassesCheckHook'))) is NumClassesCheckHook


def test_matching_counts_pass():
    NumClassesCheckHook().before_train(fake_runner(3, ['a', 'b', 'c'], ['a', 'b', 'c']))


@pytest.mark.parametrize('train, val, split', [(['a', 'b'], None, 'train'), (['a', 'b', 'c'], ['a', 'b'], 'val')])
def test_mismatch_names_split_and_fix(train, val, split):
    with pytest.raises(ValueError, match=f'{split} dataset has 2 classes.*3 outputs.*model.head.num_classes=2'):
        NumClassesCheckHook().before_train(fake_runner(3, train, val))
