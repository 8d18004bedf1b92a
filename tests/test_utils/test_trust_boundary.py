"""Checkpoints from outside (downloads, ``load_from`` of a foreign file) are loaded weights-only: a pickled
payload is refused before it runs. mmsimclr's own training checkpoints resume normally."""
import os
import os.path as osp

import pytest
import torch

from mmsimclr.utils.checkpoint import UnsafeCheckpointError

pytestmark = pytest.mark.checkpoint

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')


class _Payload:
    """Unpickling this (with weights_only=False) would create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def _foreign_checkpoint(tmp_path):
    marker = str(tmp_path / 'payload_ran')
    path = tmp_path / 'foreign.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}, 'meta': _Payload(marker)}, path)
    return str(path), marker


def test_downloaded_checkpoint_with_payload_is_refused(tmp_path, monkeypatch):
    from mmsimclr.apis import get_model
    path, marker = _foreign_checkpoint(tmp_path)
    monkeypatch.setenv('MMSIMCLR_CACHE', str(tmp_path / 'cache'))
    with pytest.raises(UnsafeCheckpointError, match='foreign.pth'):
        get_model(TINY, pretrained='file://' + path, device='cpu', progress=False)
    assert not osp.exists(marker)


def test_load_from_foreign_file_is_refused_before_training(tiny_data, tmp_path):
    from tools.train import main
    path, marker = _foreign_checkpoint(tmp_path)
    work = tmp_path / 'work'
    with pytest.raises(UnsafeCheckpointError, match='foreign.pth'):
        main([TINY, '--work-dir', str(work), '--cfg-options', f'train_dataloader.dataset.data_root={tiny_data}',
              f'load_from={path}'])
    assert not osp.exists(marker)
    assert not [f for f in os.listdir(work) if f.endswith('.pth')]  # no training step was saved


def test_own_checkpoint_resumes_weights_only(tmp_path):
    """A checkpoint written by training (message hub buffers, numpy meta, optimizer and scheduler state) resumes
    through mmengine's runner with the weights-only loader, to the saved iteration and weights."""
    from mmsimclr.utils.resume import find_resume_checkpoint
    from tests.test_engine.test_hooks.test_nonfinite_loss_hook import _runner
    first = _runner(tmp_path, 'stop', bad_iter=None)
    first.train()
    saved = {k: v.clone() for k, v in first.model.state_dict().items()}
    last = osp.join(str(tmp_path), 'iter_6.pth')
    assert find_resume_checkpoint(str(tmp_path)) == last
    second = _runner(tmp_path, 'stop', bad_iter=None)
    second._resume, second._load_from = True, last
    second.train()  # max_iters reached: resumes, trains nothing
    assert second.iter == 6
    for key, value in second.model.state_dict().items():
        assert torch.equal(value, saved[key])
