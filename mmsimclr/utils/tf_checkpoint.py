"""Read a TensorFlow checkpoint (TF1/TF2 "V2" tensor bundle) into numpy arrays without TensorFlow.

A checkpoint ``<prefix>`` is two files:

- ``<prefix>.index``: a LevelDB-format sorted table (blocks of prefix-compressed key/value entries, an index block
  pointing at them, a 48-byte footer ending in the table magic number). Each key is a variable's name; each value
  is a serialized ``BundleEntryProto`` (dtype, shape, shard, offset, size). The empty key holds the
  ``BundleHeaderProto`` (number of data shards, endianness).
- ``<prefix>.data-SSSSS-of-NNNNN``: the tensors' raw bytes, little-endian, C order, at the recorded offsets.

Only the handful of protobuf wire-format rules those two messages need are implemented here (varints, length-
delimited and fixed32 fields), which spares the conversion a TensorFlow (or protobuf) install. Tensors are read
lazily, one ``seek`` + ``read`` each, so a 1.5 GB ResNet-50 (4x) checkpoint needs memory for the tensors asked for
only. Unsupported cases (compressed tables, big-endian bundles, partitioned variables) raise a clear error.
"""
import os.path as osp
import struct
from typing import Dict, Iterator, List, Tuple

import numpy as np

TABLE_MAGIC = 0xdb4775248b80fb57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5  # compression type (1 byte) + masked crc32c (4 bytes)

#: TensorFlow ``DataType`` enum values -> numpy dtypes (little-endian).
TF_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
             10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}


class TFCheckpointError(ValueError):
    """The files are not a readable TensorFlow checkpoint."""


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise TFCheckpointError('truncated varint')
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7f) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> Iterator[Tuple[int, int, object]]:
    """``(field_number, wire_type, value)`` of a serialized protobuf message (value: int or bytes)."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from('<Q', buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from('<I', buf, pos)[0], pos + 4
        else:
            raise TFCheckpointError(f'unsupported protobuf wire type {wire}')
        yield number, wire, value


def _block_entries(data: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """Key/value pairs of one LevelDB table block (keys share prefixes with the previous key)."""
    num_restarts = struct.unpack_from('<I', data, len(data) - 4)[0]
    end = len(data) - 4 - 4 * num_restarts
    pos, key = 0, b''
    while pos < end:
        shared, pos = _varint(data, pos)
        unshared, pos = _varint(data, pos)
        value_len, pos = _varint(data, pos)
        key = key[:shared] + data[pos:pos + unshared]
        pos += unshared
        yield key, data[pos:pos + value_len]
        pos += value_len


class TFCheckpoint:
    """The variables of a TensorFlow checkpoint, by name.

    Args:
        prefix: the checkpoint prefix (``.../model.ckpt-225206``); ``prefix + '.index'`` must exist.

    ``names()`` lists the variables; ``shape(name)``, ``dtype(name)``; ``read(name)`` returns a numpy array (TF's
    layout, e.g. a conv kernel is ``[kh, kw, in, out]``).
    """

    def __init__(self, prefix: str):
        self.prefix = prefix
        index = prefix + '.index'
        if not osp.isfile(index):
            raise FileNotFoundError(f'TensorFlow checkpoint {prefix}: {index} does not exist (pass the prefix, '
                                    'e.g. ".../model.ckpt-225206", without ".index")')
        with open(index, 'rb') as f:
            table = f.read()
        self._entries: Dict[str, dict] = {}
        self._num_shards = 1
        for key, value in self._table_items(table, index):
            if key == b'':
                self._read_header(value, index)
            else:
                self._entries[key.decode('utf-8')] = self._parse_entry(value, key)

    @staticmethod
    def _table_items(table: bytes, source: str) -> Iterator[Tuple[bytes, bytes]]:
        if len(table) < FOOTER_SIZE or struct.unpack_from('<Q', table, len(table) - 8)[0] != TABLE_MAGIC:
            raise TFCheckpointError(f'{source} is not a TensorFlow checkpoint index (no table magic number at its '
                                    'end); is the file truncated?')
        footer = table[-FOOTER_SIZE:]
        _, pos = _varint(footer, 0)  # metaindex offset
        _, pos = _varint(footer, pos)  # metaindex size
        index_offset, pos = _varint(footer, pos)
        index_size, pos = _varint(footer, pos)

        def block(offset: int, size: int) -> bytes:
            if offset + size + BLOCK_TRAILER_SIZE > len(table):
                raise TFCheckpointError(f'{source} is truncated (a block ends past the end of the file)')
            if table[offset + size] != 0:
                raise TFCheckpointError(f'{source} uses a compressed table (type {table[offset + size]}), which '
                                        'this reader does not support; convert with TensorFlow installed')
            return table[offset:offset + size]

        for _, handle in _block_entries(block(index_offset, index_size)):
            offset, pos = _varint(handle, 0)
            size, _ = _varint(handle, pos)
            yield from _block_entries(block(offset, size))

    def _read_header(self, value: bytes, source: str) -> None:
        for number, _, field in _proto_fields(value):
            if number == 1:
                self._num_shards = field
            elif number == 2 and field != 0:
                raise TFCheckpointError(f'{source}: big-endian checkpoints are not supported')

    @staticmethod
    def _parse_entry(value: bytes, key: bytes) -> dict:
        entry = {'dtype': 1, 'shape': [], 'shard': 0, 'offset': 0, 'size': 0}
        for number, _, field in _proto_fields(value):
            if number == 1:
                entry['dtype'] = field
            elif number == 2:
                for dim_number, _, dim in _proto_fields(field):
                    if dim_number == 2:
                        size = next((v for n, _, v in _proto_fields(dim) if n == 1), 0)
                        entry['shape'].append(size - (1 << 64) if size >= 1 << 63 else size)
            elif number == 3:
                entry['shard'] = field
            elif number == 4:
                entry['offset'] = field
            elif number == 5:
                entry['size'] = field
            elif number == 7:
                entry['sliced'] = True
        return entry

    def names(self) -> List[str]:
        """Variable names, sorted (the index's order)."""
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def shape(self, name: str) -> Tuple[int, ...]:
        return tuple(self._entry(name)['shape'])

    def dtype(self, name: str):
        code = self._entry(name)['dtype']
        return TF_DTYPES.get(code)

    def _entry(self, name: str) -> dict:
        if name not in self._entries:
            raise KeyError(f'TensorFlow checkpoint {self.prefix} has no variable "{name}"')
        return self._entries[name]

    def read(self, name: str) -> np.ndarray:
        """The variable ``name`` as a numpy array (shape and dtype as stored)."""
        entry = self._entry(name)
        dtype = TF_DTYPES.get(entry['dtype'])
        if dtype is None or entry.get('sliced'):
            what = 'is partitioned' if entry.get('sliced') else f'has unsupported dtype code {entry["dtype"]}'
            raise TFCheckpointError(f'TensorFlow checkpoint {self.prefix}: variable "{name}" {what}')
        count = int(np.prod(entry['shape'], dtype=np.int64))
        if count * np.dtype(dtype).itemsize != entry['size']:
            raise TFCheckpointError(f'TensorFlow checkpoint {self.prefix}: variable "{name}" records {entry["size"]} '
                                    f'bytes for shape {entry["shape"]}; the index is corrupted')
        shard = f'{self.prefix}.data-{entry["shard"]:05d}-of-{self._num_shards:05d}'
        if not osp.isfile(shard):
            raise FileNotFoundError(f'TensorFlow checkpoint {self.prefix}: data file {shard} does not exist (the '
                                    '.index and .data-* files must sit side by side)')
        with open(shard, 'rb') as f:
            f.seek(entry['offset'])
            data = f.read(entry['size'])
        if len(data) != entry['size']:
            raise TFCheckpointError(f'TensorFlow checkpoint {self.prefix}: {shard} is truncated (variable "{name}" '
                                    f'needs bytes {entry["offset"]}..{entry["offset"] + entry["size"]})')
        return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder('<')).reshape(entry['shape']).copy()
