"""Count the operations of a piece of code that would make the host wait for a GPU (device -> host syncs).

On a GPU the host queues kernels and runs ahead; an op whose *result size or value* the host needs (``.item()``,
``bool(t)``, ``nonzero``, boolean-mask indexing, ...) or a blocking copy stops it until the device has caught up,
which starves the device of work. ``torch.cuda.set_sync_debug_mode`` reports those on a GPU only; this mode
counts them at the aten level, on any device, so CPU tests can assert "no syncs in a training step":

    from tests.sync_counter import SyncCounter
    with SyncCounter() as syncs:
        model.train_step(data, optim_wrapper)
    assert syncs.total == 0, syncs.summary()

What counts (one per call of the op):

* ``item``: ``aten._local_scalar_dense`` (``.item()``, ``bool(t)``, ``float(t)``, ``if t:``, ``t.tolist()`` of a
  0-d tensor); ``aten.equal`` / ``aten.is_nonzero`` (a Python bool out of tensors);
* ``nonzero``: ``aten.nonzero`` (``torch.where(mask)`` with one argument, ``argwhere``);
* ``bool-mask index``: ``aten.index`` / ``index_put(_)`` with a bool or uint8 index (``x[mask]``, ``x[mask] = v``);
* ``masked_select``, ``unique`` (all ``_unique*`` / ``unique_*`` overloads);
* ``repeat_interleave``: ``aten.repeat_interleave.Tensor`` without ``output_size`` (its length is data);
* ``device -> host copy``: ``_to_copy`` / ``copy_`` from a non-CPU tensor into CPU memory without ``non_blocking``;
* ``blocking host -> device copy``: ``_to_copy`` / ``copy_`` from CPU to a non-CPU device unless the source is
  pinned and ``non_blocking=True``;
* ``tensor from Python data``: ``aten.lift_fresh`` (``torch.tensor(list_or_number, ...)``): on a GPU it is a
  pageable, blocking host -> device copy. On the CPU one cannot tell whether such a tensor was meant for the host or
  the device, so each one counts: code in a training step builds its host tensors with factories (``torch.full``,
  ``torch.arange``, ``torch.rand``) instead.

Not counted: ops on CPU tensors otherwise (host-side work, e.g. drawing random parameters with a CPU generator),
``.cpu()`` of a CPU tensor (a no-op). ``records`` keeps ``(kind, op name)`` of each hit, in order, for messages.
"""
from collections import Counter
from typing import List, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ['SyncCounter']

_aten = torch.ops.aten

_ITEM = {_aten._local_scalar_dense.default, _aten.equal.default, _aten.is_nonzero.default}
_NONZERO = {_aten.nonzero.default, _aten.nonzero.out}
_MASKED_SELECT = {_aten.masked_select.default, _aten.masked_select.out}
_BOOL_INDEX = {_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default,
               _aten._index_put_impl_.default}
_REPEAT_INTERLEAVE = {_aten.repeat_interleave.Tensor, _aten.repeat_interleave.self_Tensor}
_COPIES = {_aten._to_copy.default, _aten.copy_.default}


def _is_unique(packet) -> bool:
    name = packet.__name__  # e.g. '_unique2', 'unique_consecutive', 'unique_dim'
    return name.startswith('_unique') or name.startswith('unique_')


def _device_of(value):
    return value.device if isinstance(value, torch.Tensor) else None


class SyncCounter(TorchDispatchMode):
    """A ``TorchDispatchMode`` counting host-blocking ops (see the module docstring); ``total``, ``counts``
    (per kind), ``records`` (``[(kind, op), ...]``) and ``summary()`` after (or during) the ``with`` block."""

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()
        self.records: List[Tuple[str, str]] = []

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        return ', '.join(f'{kind}: {n}' for kind, n in self.counts.most_common()) or 'no syncs'

    def _kind(self, func, args, kwargs, out):
        if func in _ITEM:
            return 'item'
        if func in _NONZERO:
            return 'nonzero'
        if func in _MASKED_SELECT:
            return 'masked_select'
        if func in _REPEAT_INTERLEAVE:  # output length = sum(repeats): data, unless given
            return None if kwargs.get('output_size') is not None else 'repeat_interleave'
        if _is_unique(func.overloadpacket):
            return 'unique'
        if func in _BOOL_INDEX:
            indices = args[1] if len(args) > 1 else kwargs.get('indices', ())
            if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ()):
                return 'bool-mask index'
            return None
        if func is _aten.lift_fresh.default:
            return 'tensor from Python data'
        if func in _COPIES:
            if func is _aten.copy_.default:
                dst, src = args[0], args[1]
                non_blocking = args[2] if len(args) > 2 else kwargs.get('non_blocking', False)
            else:
                src, dst = args[0], out
                non_blocking = kwargs.get('non_blocking', False)
            src_dev, dst_dev = _device_of(src), _device_of(dst)
            if src_dev is None or dst_dev is None or src_dev == dst_dev:
                return None
            if dst_dev.type == 'cpu' and not non_blocking:
                return 'device -> host copy'
            if src_dev.type == 'cpu' and dst_dev.type != 'cpu' and not (non_blocking and src.is_pinned()):
                return 'blocking host -> device copy'
        return None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        kind = self._kind(func, args, kwargs, out)
        if kind is not None:
            self.counts[kind] += 1
            self.records.append((kind, str(func)))
        return out
