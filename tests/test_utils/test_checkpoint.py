"""Weights-only loading that reads mmengine's own checkpoints and refuses pickled code."""
import os
import pickle
import re

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from mmsimclr.utils.checkpoint import STALE_BUFFERS, UnsafeCheckpointError, safe_torch_load

pytestmark = pytest.mark.checkpoint


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null', ))


def test_mmengine_style_checkpoint_loads_weights_only(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(1.5)
    ckpt = dict(state_dict={'w': torch.ones(2)}, meta=dict(epoch=3, seed=np.int64(7)),
                message_hub=dict(log_scalars={'train/loss': buffer}, runtime_info={'arr': np.arange(3)}))
    path = tmp_path / 'ckpt.pth'
    torch.save(ckpt, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # what mmengine 0.10.7 does under torch >= 2.6 without mmsimclr
    loaded = _load_checkpoint(str(path))  # mmengine's API goes through our registered loader
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 1.5
    assert loaded['meta']['seed'] == 7


def test_pickled_callable_is_refused_not_executed(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _Evil()}, path)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        safe_torch_load(str(path))
    with pytest.raises(UnsafeCheckpointError):
        _load_checkpoint(str(path))


class _Eval:

    def __reduce__(self):
        return (eval, ('1 + 1', ))


@pytest.mark.parametrize('zipfile', [True, False], ids=['zip', 'legacy'])
@pytest.mark.parametrize('payload,refused', [(_Evil(), r'(os|posix)\.system'), (_Eval(), r'(builtins\.)?eval')])
def test_refusal_names_file_and_global_in_both_formats(tmp_path, zipfile, payload, refused):
    path = tmp_path / 'payload.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': payload}, path,
               _use_new_zipfile_serialization=zipfile)
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(str(path))
    message = str(info.value)
    assert 'payload.pth' in message
    assert re.search(f'it pickles {refused}, which', message) and re.search(f'refused global {refused}$', message)
    with pytest.raises(UnsafeCheckpointError, match=refused):
        _load_checkpoint(str(path))  # mmengine's path: the same refusal


@pytest.mark.parametrize('zipfile', [True, False], ids=['zip', 'legacy'])
def test_numpy_globals_in_both_formats(tmp_path, zipfile):
    """Arrays, numpy scalars and dtypes of the running numpy round-trip in the zip and legacy formats."""
    ckpt = dict(state_dict={'w': torch.arange(3.)}, message_hub=dict(
        runtime_info=dict(eta=np.float64(12.5), arr=np.arange(4, dtype=np.int32), dt=np.dtype('float16'))))
    path = tmp_path / 'np.pth'
    torch.save(ckpt, path, _use_new_zipfile_serialization=zipfile)
    info = safe_torch_load(str(path))['message_hub']['runtime_info']
    assert info['eta'] == 12.5 and isinstance(info['eta'], np.float64)
    assert info['arr'].dtype == np.int32 and info['arr'].tolist() == [0, 1, 2, 3]
    assert info['dt'] == np.dtype('float16')


def test_stale_preprocessor_buffers_are_dropped_others_kept(tmp_path):
    """mmengine < 0.3 saved the data preprocessor's mean/std; today they are non-persistent buffers."""
    state_dict = {'backbone.w': torch.ones(1), 'neck.unknown': torch.zeros(1)}
    state_dict.update({key: torch.ones(3, 1, 1) for key in STALE_BUFFERS})
    path = tmp_path / 'old.pth'
    torch.save({'state_dict': state_dict}, path)
    loaded = safe_torch_load(str(path))['state_dict']
    assert sorted(loaded) == ['backbone.w', 'neck.unknown']


def test_getattr_is_restricted(tmp_path):
    """HistoryBuffer needs getattr(HistoryBuffer, 'mean'); any other getattr in a file is refused."""

    class _Sneaky:

        def __reduce__(self):
            return (getattr, (np.ndarray, 'tofile'))

    path = tmp_path / 'sneaky.pth'
    torch.save({'x': _Sneaky()}, path)
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(str(path))


def test_local_loader_is_registered_and_names_missing_files():
    loader = CheckpointLoader._get_checkpoint_loader('/some/file.pth')
    assert loader.__name__ == 'load_from_local_weights_only'
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        _load_checkpoint('/nonexistent/missing.pth')
