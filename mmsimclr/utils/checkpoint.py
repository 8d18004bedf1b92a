"""Weights-only checkpoint loading that still reads mmengine's own checkpoints.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True`` and mmengine 0.10.7 calls it without arguments,
so resume, ``load_from`` and ``init_cfg=Pretrained`` refuse mmengine's own checkpoints: besides tensors they hold
the message hub's ``HistoryBuffer`` objects and numpy arrays/scalars. Turning weights-only loading off (the
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` environment variable, or ``weights_only=False``) would let any checkpoint run
arbitrary code on load.

Instead we register a local-file loader with mmengine's ``CheckpointLoader`` (its extension point) that keeps
``weights_only=True`` and allows exactly the extra, data-only types those checkpoints contain. A checkpoint that
pickles anything else (a function, a class with a custom ``__reduce__``) is refused with an error naming the file.
"""
import importlib
import os.path as osp
import pickle
import re
from typing import List

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


def _numpy_globals() -> List:
    """numpy's data-only pickle globals, under both module spellings.

    numpy 2 renamed ``numpy.core`` to ``numpy._core``; a pickle names the module of the numpy that *wrote* it. The
    published OpenMMLab checkpoints (numpy 1.x) say ``numpy.core.multiarray._reconstruct`` / ``.scalar``, a file
    written today says ``numpy._core.multiarray...``. Both names are mapped to the running numpy's functions (the
    same objects numpy's own unpickling shims resolve them to), so files from either numpy line load under the
    other without importing the deprecated ``numpy.core`` alias.
    """
    # numpy 2 has the real module at numpy._core.multiarray; numpy 1.26 has it at numpy.core.multiarray (its
    # numpy._core.multiarray is a shim that only exists once imported, hence import_module, not getattr)
    multiarray = importlib.import_module('numpy._core.multiarray' if int(np.__version__.split('.')[0]) >= 2
                                         else 'numpy.core.multiarray')
    allowed: List = [np.ndarray, np.dtype]
    for func in ('_reconstruct', 'scalar'):
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            allowed.append((getattr(multiarray, func), f'{module}.{func}'))
    # numpy >= 1.25 pickles dtypes through their classes in numpy.dtypes
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    return allowed


def _history_buffer_getattr(obj, name: str):
    """Stand-in for ``getattr`` while unpickling.

    A ``HistoryBuffer`` pickles its statistics methods as ``getattr(HistoryBuffer, 'mean')``. Allowing the real
    ``getattr`` would let a crafted file reach any attribute of an allowed type (``ndarray.tofile`` writes files),
    so only a HistoryBuffer's own statistics methods can be looked up.
    """
    if obj is HistoryBuffer and (name in ('min', 'max', 'current', 'mean') or name in HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in a weights-only checkpoint')


#: Data-only types found in mmengine checkpoints besides tensors and builtins.
SAFE_GLOBALS = [HistoryBuffer, (_history_buffer_getattr, '__builtin__.getattr'),
                (_history_buffer_getattr, 'builtins.getattr')] + _numpy_globals()


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds pickled objects outside the weights-only allow-list."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is empty, truncated or otherwise not a readable torch file."""


def _refused_what(error: Exception) -> str:
    """The refused global (``os.system``, ``builtins.eval``...) as named in torch's weights-only error."""
    text = str(error)
    match = (re.search(r'GLOBAL ([\w.]+)', text) or re.search(r'but got (<[^>]+>)', text)
             or re.search(r'(Unsupported operand [^\n.]+)', text))
    return match.group(1) if match else (text.strip().splitlines() or ['unknown'])[-1][:200]


#: ``state_dict`` entries that mmengine < 0.3 saved but today's models hold as non-persistent buffers: the image
#: normalisation of ``ImgDataPreprocessor`` (mmengine 0.10 registers ``mean``/``std`` with ``persistent=False``).
#: Every published OpenMMLab SimCLR checkpoint has them; they are dropped on load instead of warned about.
STALE_BUFFERS = ('data_preprocessor.mean', 'data_preprocessor.std')


def drop_stale_buffers(checkpoint):
    """Remove :data:`STALE_BUFFERS` from ``checkpoint['state_dict']`` (in place; returns the checkpoint)."""
    state_dict = checkpoint.get('state_dict') if isinstance(checkpoint, dict) else None
    if isinstance(state_dict, dict):
        for key in STALE_BUFFERS:
            state_dict.pop(key, None)
    return checkpoint


def safe_torch_load(f, map_location=None, name: str = None):
    """``torch.load(f, weights_only=True)`` with mmengine's data-only types allowed.

    Reads the zip format and the legacy (``_use_new_zipfile_serialization=False``) one, files pickled under numpy 1
    or numpy 2, and drops the :data:`STALE_BUFFERS` that old mmengine versions saved.

    Raises:
        UnsafeCheckpointError: the file pickles a callable or another type that is not allowed (the message names
            the file and the refused global).
        CorruptCheckpointError: the file is empty, truncated or not a torch file.
    """
    name = name or str(f)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return drop_stale_buffers(torch.load(f, map_location=map_location, weights_only=True))
    except Exception as e:  # torch raises UnpicklingError (message names the global) for refused types
        if 'Weights only load failed' in str(e) or isinstance(e, pickle.UnpicklingError):
            refused = _refused_what(e)
            raise UnsafeCheckpointError(
                f'Refused to load checkpoint {name}: it pickles {refused}, which is not plain weights, and loading '
                'it could execute code. If you trust the file, convert it once with '
                "torch.save(torch.load(path, weights_only=False)['state_dict'], new_path) and load new_path. "
                f'Details: refused global {refused}') from e
        if isinstance(e, (EOFError, RuntimeError)) and not isinstance(e, UnsafeCheckpointError):
            detail = (str(e).splitlines() or ['empty file'])[0]
            raise CorruptCheckpointError(
                f'Checkpoint {name} is truncated or corrupt (a run killed while writing it, or a partial copy): '
                f'{detail}. Use an older checkpoint, or --resume auto, which skips unreadable ones.') from e
        raise


def load_from_local_weights_only(filename: str, map_location=None):
    """mmengine ``CheckpointLoader`` scheme for local paths (prefix ``''``): weights-only, mmengine types allowed."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint {filename} does not exist; check load_from / --resume / '
                                'init_cfg.checkpoint')
    return safe_torch_load(filename, map_location=map_location, name=filename)


_REGISTERED = False


def register_checkpoint_loader() -> None:
    """Install the weights-only local loader into mmengine (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_weights_only, force=True)
    _REGISTERED = True
