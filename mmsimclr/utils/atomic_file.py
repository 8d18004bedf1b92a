"""Crash-safe writes of local files: write a temporary file next to the target, flush it to disk, rename it.

``os.replace`` within one folder is atomic on POSIX and Windows, so a reader (or a resumed run) sees either the old
file or the complete new one, never a partly written file, whatever moment the writer is killed at. The temporary
file is named ``.<name>.tmp-<pid>`` (hidden, no ``.pth`` suffix) so that a stale one left by a killed writer is
never mistaken for a checkpoint; :func:`remove_stale_temp_files` clears them.

:class:`AtomicLocalBackend` exposes this through mmengine's file-backend extension point (``backend_args=dict(
backend='atomic_local')``), which is how ``save_checkpoint`` and ``CheckpointHook`` write their files.
"""
import glob
import os
import os.path as osp
from pathlib import Path
from typing import List, Union

from mmengine.fileio import LocalBackend, register_backend

TEMP_MARK = '.tmp-'


def temp_path_for(path: str) -> str:
    """The temporary file that :func:`atomic_write_bytes` writes before renaming it to ``path``."""
    folder, name = osp.split(osp.abspath(path))
    return osp.join(folder, f'.{name}{TEMP_MARK}{os.getpid()}')


def _fsync_dir(folder: str) -> None:
    """Persist a rename: the folder entry must reach the disk too (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_all(f, data: bytes) -> None:
    """Write ``data`` to the open temporary file and push it to the disk (kept separate so tests can interrupt a
    write half-way)."""
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``, atomically; creates the folder if needed."""
    path = str(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        with open(tmp, 'wb') as f:
            _write_all(f, data)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def atomic_write_text(path: Union[str, Path], text: str, encoding: str = 'utf-8') -> None:
    """Text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode(encoding))


def remove_stale_temp_files(folder: str) -> List[str]:
    """Delete temporary files that killed writers left in ``folder``; returns their paths."""
    removed = []
    for tmp in glob.glob(osp.join(glob.escape(folder), f'.*{TEMP_MARK}*')):
        try:
            os.remove(tmp)
            removed.append(tmp)
        except OSError:
            pass
    return removed


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with crash-safe ``put`` / ``put_text`` (everything else unchanged)."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write_text(filepath, obj, encoding)


register_backend('atomic_local', AtomicLocalBackend, force=True)
