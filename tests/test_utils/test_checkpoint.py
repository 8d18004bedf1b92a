"""Weights-only loading that reads mmengine's own checkpoints and refuses pickled code."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from mmsimclr.utils.checkpoint import UnsafeCheckpointError, safe_torch_load


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
