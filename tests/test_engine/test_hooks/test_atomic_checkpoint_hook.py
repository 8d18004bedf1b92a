"""AtomicCheckpointHook: checkpoints and pointer written through temporary files; with max_keep_ckpts the old
checkpoint is deleted only after the new one is complete."""
import os
import os.path as osp

import pytest

import mmsimclr.engine.hooks.atomic_checkpoint_hook as hook_module
import mmsimclr.utils.atomic_file as atomic_file
from tests.test_engine.test_hooks.test_nonfinite_loss_hook import _runner


def test_writes_are_atomic_and_retire_after_save(tmp_path, monkeypatch):
    written = []
    real = atomic_file.atomic_write_bytes

    def spy(path, data):
        written.append(osp.basename(str(path)))
        real(path, data)

    on_disk_at_pointer = []

    def pointer_spy(path, text):  # what is on disk when the pointer is replaced: the new and the retired one
        on_disk_at_pointer.append(sorted(f for f in os.listdir(tmp_path) if f.endswith('.pth')))
        real_text(path, text)

    real_text = hook_module.atomic_write_text
    monkeypatch.setattr(atomic_file, 'atomic_write_bytes', spy)
    monkeypatch.setattr(hook_module, 'atomic_write_text', pointer_spy)
    runner = _runner(tmp_path, 'stop', bad_iter=None, checkpoint=dict(type='AtomicCheckpointHook', interval=1,
                                                                       by_epoch=False, max_keep_ckpts=1))
    runner.train()
    assert written == [name for i in range(1, 7) for name in (f'iter_{i}.pth', 'last_checkpoint')]
    assert on_disk_at_pointer == [['iter_1.pth']] + [[f'iter_{i - 1}.pth', f'iter_{i}.pth'] for i in range(2, 7)]
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith('.pth')) == ['iter_6.pth']
    assert open(tmp_path / 'last_checkpoint').read() == osp.join(str(tmp_path), 'iter_6.pth')


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """With max_keep_ckpts=1 mmengine deletes the old checkpoint before writing the new one; here a write that
    dies leaves the previous checkpoint and the pointer to it."""
    runner = _runner(tmp_path, 'stop', bad_iter=None, checkpoint=dict(type='AtomicCheckpointHook', interval=2,
                                                                       by_epoch=False, max_keep_ckpts=1))
    calls = []

    def die_on_second_checkpoint(f, data):
        calls.append(1)
        if len(calls) == 3:  # iter_2.pth, last_checkpoint, then iter_4.pth
            raise OSError('disk full')
        f.write(data)

    monkeypatch.setattr(atomic_file, '_write_all', die_on_second_checkpoint)
    with pytest.raises(OSError, match='disk full'):
        runner.train()
    assert osp.isfile(tmp_path / 'iter_2.pth')
    assert not osp.exists(tmp_path / 'iter_4.pth')
    assert open(tmp_path / 'last_checkpoint').read().endswith('iter_2.pth')


def test_a_failed_best_save_keeps_the_previous_best_checkpoint(tmp_path):
    """save_best: mmengine removes the previous best checkpoint before it writes the new one; here the new one's
    write dies and the previous best is still there. A write that succeeds retires the previous best after it."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub, MMLogger

    from mmsimclr.engine.hooks import AtomicCheckpointHook

    fail = []

    def save_checkpoint(out_dir, filename, **kwargs):
        if fail:
            raise OSError('disk full')
        (tmp_path / filename).write_bytes(b'weights')

    runner = SimpleNamespace(work_dir=str(tmp_path), epoch=1, iter=10, save_checkpoint=save_checkpoint,
                             message_hub=MessageHub.get_instance('atomic_best_test'),
                             logger=MMLogger.get_instance('atomic_best_test'))
    hook = AtomicCheckpointHook(interval=1, save_best='acc', rule='greater')
    hook.out_dir = str(tmp_path)
    hook.backend_args = dict(backend='atomic_local')
    from mmengine.fileio import get_file_backend
    hook.file_backend = get_file_backend(str(tmp_path), backend_args=hook.backend_args)
    hook._save_best_checkpoint(runner, {'acc': 1.0})
    assert sorted(os.listdir(tmp_path)) == ['best_acc_epoch_1.pth']
    runner.epoch = 2
    hook._save_best_checkpoint(runner, {'acc': 2.0})  # better: written, then the old one retired
    assert sorted(os.listdir(tmp_path)) == ['best_acc_epoch_2.pth']
    runner.epoch, fail = 3, [True]
    with pytest.raises(OSError, match='disk full'):
        hook._save_best_checkpoint(runner, {'acc': 3.0})
    assert sorted(os.listdir(tmp_path)) == ['best_acc_epoch_2.pth']
