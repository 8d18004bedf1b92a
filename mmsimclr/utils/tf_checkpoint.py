"""Read a TensorFlow checkpoint (TF1/TF2 "V2" tensor bundle) into numpy arrays without TensorFlow.

A checkpoint ``<prefix>`` is two files:

- ``<prefix>.index``: a LevelDB-format sorted table (blocks of prefix-compressed key/value entries, an index block
  pointing at them, a 48-byte footer ending in the table magic number). Each block is followed by a 5-byte trailer:
  its compression type and the masked crc32c of the block and that type byte. Each key is a variable's name; each
  value is a serialized ``BundleEntryProto`` (dtype, shape, shard, offset, size, masked crc32c of the tensor's
  bytes). The empty key holds the ``BundleHeaderProto`` (number of data shards, endianness, format version).
- ``<prefix>.data-SSSSS-of-NNNNN``: the tensors' raw bytes, little-endian, C order, at the recorded offsets.

Only the handful of protobuf wire-format rules those two messages need are implemented here (varints, length-
delimited and fixed32 fields), which spares the conversion a TensorFlow (or protobuf) install. Tensors are read
lazily, in 8 MiB chunks, so a 1.5 GB ResNet-50 (4x) checkpoint needs memory for the tensors asked for only.

Integrity, as strict as TensorFlow's ``BundleReader``: every index block's checksum is verified when the index is
opened and every tensor's checksum when it is read (a mismatch is a :class:`TFCheckpointError` naming the file, the
block or variable, and saying to download the file again); any other malformed content of the index is a
:class:`TFCheckpointError` naming the index file, never a low-level exception. crc32c (Castagnoli) comes from
``google-crc32c`` (Google's C library: hardware crc32c, >10 GB/s; listed in ``requirements/runtime.txt``). Stored
checksums are *masked* as LevelDB and TensorFlow do: ``mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8``
(mod 2^32). Unsupported cases (compressed tables, big-endian bundles, partitioned variables, string tensors) raise a
clear error.
"""
import math
import os.path as osp
import struct
import warnings
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

TABLE_MAGIC = 0xdb4775248b80fb57
FOOTER_SIZE = 48  # metaindex and index block handles (varints, zero-padded to 40 bytes) + 8-byte magic
BLOCK_TRAILER_SIZE = 5  # compression type (1 byte) + masked crc32c of block + type (4 bytes, little-endian)
CRC_MASK_DELTA = 0xa282ead8
READ_CHUNK = 8 << 20  # bytes per read of a tensor (TensorFlow reads large tensors in 8 MiB chunks as well)
#: TensorFlow's tensor bundle format version this reader implements (``kTensorBundleVersion``)
BUNDLE_VERSION = 1
DOWNLOAD_AGAIN = 'the file is damaged; delete the checkpoint and download it again'

#: TensorFlow ``DataType`` enum values -> numpy dtypes (little-endian).
TF_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
             10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}


class TFCheckpointError(ValueError):
    """The files are not a readable TensorFlow checkpoint (damaged, or a form this reader does not support)."""


class _Malformed(Exception):
    """Malformed index content; :class:`TFCheckpoint` re-raises it as a :class:`TFCheckpointError` naming the file."""


def mask_crc(crc: int) -> int:
    """LevelDB's / TensorFlow's masked representation of a crc32c, as stored in the files."""
    crc &= 0xffffffff
    return (((crc >> 15) | (crc << 17)) + CRC_MASK_DELTA) & 0xffffffff


def unmask_crc(masked: int) -> int:
    """The crc32c whose masked representation is ``masked``."""
    rot = (masked - CRC_MASK_DELTA) & 0xffffffff
    return ((rot >> 17) | (rot << 15)) & 0xffffffff


_CRC32C = None


def _crc32c_lib():
    """``google_crc32c``, imported on first use (so that ``mmsimclr`` imports without it)."""
    global _CRC32C
    if _CRC32C is None:
        try:
            import google_crc32c
        except ImportError as e:
            raise ImportError('Reading TensorFlow checkpoints verifies their crc32c checksums with the google-crc32c '
                              'package: pip install google-crc32c (listed in requirements/runtime.txt)') from e
        if getattr(google_crc32c, 'implementation', 'c') != 'c':
            warnings.warn('google-crc32c has no compiled extension here (pure-Python fallback): verifying a large '
                          'TensorFlow checkpoint will take very long; reinstall google-crc32c from a wheel')
        _CRC32C = google_crc32c
    return _CRC32C


def crc32c(data: bytes, crc: int = 0) -> int:
    """crc32c (Castagnoli) of ``data`` (``bytes``), continuing ``crc`` (the crc32c of the bytes before it)."""
    return _crc32c_lib().extend(crc, data)


def _varint(buf: bytes, pos: int, end: Optional[int] = None) -> Tuple[int, int]:
    end = len(buf) if end is None else end
    result = shift = 0
    while True:
        if pos >= end:
            raise _Malformed('truncated varint')
        if shift > 63:
            raise _Malformed('varint longer than 10 bytes')
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
        if number == 0:
            raise _Malformed('protobuf field number 0')
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise _Malformed('truncated fixed-size protobuf field')
            value, pos = int.from_bytes(buf[pos:pos + size], 'little'), pos + size
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise _Malformed('length-delimited protobuf field runs past the end of its message')
            value, pos = buf[pos:pos + length], pos + length
        else:
            raise _Malformed(f'unsupported protobuf wire type {wire}')
        yield number, wire, value


def _int64(value: int) -> int:
    """A varint read as protobuf ``int64`` (two's complement)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _short(text, limit: int = 80) -> str:
    """``text`` (str, or bytes shown as a literal) cut to ``limit`` characters, for messages about damaged names."""
    text = repr(text) if isinstance(text, bytes) else text
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _check_wire(what: str, number: int, wire: int, expected: int) -> None:
    if wire != expected:
        raise _Malformed(f'{what} field {number} has wire type {wire}, expected {expected}')


def _block_entries(data: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """Key/value pairs of one LevelDB table block (keys share prefixes with the previous key)."""
    if len(data) < 4:
        raise _Malformed(f'block of {len(data)} bytes is too short for its restart count')
    num_restarts = struct.unpack_from('<I', data, len(data) - 4)[0]
    end = len(data) - 4 - 4 * num_restarts
    if end < 0:
        raise _Malformed(f'block of {len(data)} bytes cannot hold its {num_restarts} restart points')
    restarts = struct.unpack_from(f'<{num_restarts}I', data, end)
    if end and (not restarts or restarts[0] != 0 or any(a >= b for a, b in zip(restarts, restarts[1:]))
                or restarts[-1] >= end):
        raise _Malformed('block restart points are not increasing offsets into the block')
    restart_set, restarts_seen = set(restarts), 0
    pos, key = 0, b''
    while pos < end:
        restart = pos in restart_set
        shared, pos = _varint(data, pos, end)
        unshared, pos = _varint(data, pos, end)
        value_len, pos = _varint(data, pos, end)
        if shared > len(key) or pos + unshared + value_len > end:
            raise _Malformed('block entry runs past its block or shares more bytes than the previous key has')
        if restart and shared:
            raise _Malformed('block entry at a restart point shares bytes with the previous key')
        restarts_seen += restart
        key = key[:shared] + data[pos:pos + unshared]
        pos += unshared
        yield key, data[pos:pos + value_len]
        pos += value_len
    if end and restarts_seen != num_restarts:
        raise _Malformed('block restart point inside an entry')


class TFCheckpoint:
    """The variables of a TensorFlow checkpoint, by name.

    Args:
        prefix: the checkpoint prefix (``.../model.ckpt-225206``); ``prefix + '.index'`` must exist.

    ``names()`` lists the variables; ``shape(name)``, ``dtype(name)``; ``read(name)`` returns a numpy array (TF's
    layout, e.g. a conv kernel is ``[kh, kw, in, out]``) after checking its crc32c; ``verify()`` checks them all.

    Raises:
        TFCheckpointError: the index is damaged (bad block checksum or malformed content) or unsupported.
    """

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.index_file = index = prefix + '.index'
        if not osp.isfile(index):
            raise FileNotFoundError(f'TensorFlow checkpoint {prefix}: {index} does not exist (pass the prefix, '
                                    'e.g. ".../model.ckpt-225206", without ".index")')
        with open(index, 'rb') as f:
            table = f.read()
        self._entries: Dict[str, dict] = {}
        self._num_shards = 0
        try:
            self._parse_index(table)
        except (TFCheckpointError, ImportError):
            raise
        except Exception as e:  # any low-level failure on malformed bytes: report it as damage of the index file
            reason = str(e) if isinstance(e, _Malformed) else f'{type(e).__name__}: {e}'
            raise TFCheckpointError(f'TensorFlow checkpoint index {index} is malformed ({reason}); '
                                    f'{DOWNLOAD_AGAIN}') from e

    def _parse_index(self, table: bytes) -> None:
        index = self.index_file
        previous = None
        for key, value in self._table_items(table, index):
            if previous is not None and key <= previous:
                raise _Malformed(f'keys out of order ({_short(key)} after {_short(previous)})')
            if previous is None:
                if key != b'':
                    raise _Malformed('no header entry (the empty key) first')
                self._read_header(value, index)
            else:
                name = key.decode('utf-8', errors='backslashreplace')
                if name in self._entries:  # distinct non-UTF-8 keys can decode alike
                    raise _Malformed(f'two variables named "{_short(name)}"')
                self._entries[name] = self._parse_entry(value, name)
            previous = key
        if previous is None:
            raise _Malformed('the table holds no entries (not even the header)')

    @staticmethod
    def _table_items(table: bytes, source: str) -> Iterator[Tuple[bytes, bytes]]:
        if len(table) < FOOTER_SIZE or struct.unpack_from('<Q', table, len(table) - 8)[0] != TABLE_MAGIC:
            raise TFCheckpointError(f'{source} is not a TensorFlow checkpoint index (no table magic number at its '
                                    'end): the file is truncated or damaged; delete the checkpoint and download it '
                                    'again')
        footer_start = len(table) - FOOTER_SIZE
        handles_end = len(table) - 8
        metaindex_offset, pos = _varint(table, footer_start, handles_end)
        metaindex_size, pos = _varint(table, pos, handles_end)
        index_offset, pos = _varint(table, pos, handles_end)
        index_size, pos = _varint(table, pos, handles_end)

        def block(offset: int, size: int, what: str) -> bytes:
            end = offset + size + BLOCK_TRAILER_SIZE
            if end > footer_start:
                raise TFCheckpointError(f'{source} is truncated or damaged: its {what} (bytes {offset}..{end}) ends '
                                        f'past the table data (which ends at byte {footer_start}); delete the '
                                        'checkpoint and download it again')
            stored = struct.unpack_from('<I', table, offset + size + 1)[0]
            actual = crc32c(table[offset:offset + size + 1])  # the block and its type byte
            if unmask_crc(stored) != actual:
                raise TFCheckpointError(f'TensorFlow checkpoint index {source} is damaged: its {what} (bytes '
                                        f'{offset}..{end}) fails its crc32c check (stored {unmask_crc(stored):08x}, '
                                        f'computed {actual:08x}); delete the checkpoint and download it again')
            if table[offset + size] != 0:
                raise TFCheckpointError(f'{source} uses a compressed table (type {table[offset + size]}), which '
                                        'this reader does not support; convert with TensorFlow installed')
            return table[offset:offset + size]

        block(metaindex_offset, metaindex_size, 'metaindex block')  # unused by TensorFlow, but must be intact
        for _, handle in _block_entries(block(index_offset, index_size, 'index block')):
            offset, pos = _varint(handle, 0)
            size, pos = _varint(handle, pos)
            if pos != len(handle):
                raise _Malformed('index block entry is not a block handle')
            yield from _block_entries(block(offset, size, f'data block at byte {offset}'))

    def _read_header(self, value: bytes, source: str) -> None:
        endianness = 0
        for number, wire, field in _proto_fields(value):
            if number == 1:
                _check_wire('BundleHeaderProto', number, wire, 0)
                self._num_shards = _int64(field)
            elif number == 2:
                _check_wire('BundleHeaderProto', number, wire, 0)
                endianness = field
            elif number == 3:
                _check_wire('BundleHeaderProto', number, wire, 2)
                self._check_version(field, source)
        if endianness == 1:
            raise TFCheckpointError(f'{source}: big-endian checkpoints are not supported')
        if endianness != 0:
            raise _Malformed(f'header has endianness {endianness} (0: little, 1: big)')
        if self._num_shards < 1:
            raise _Malformed(f'header gives {self._num_shards} data shards')

    @staticmethod
    def _check_version(value: bytes, source: str) -> None:
        """TensorFlow's ``CheckVersions`` for the bundle format: ``VersionDef`` (producer, min_consumer,
        bad_consumers) against this reader's version 1 (TensorFlow's minimum producer and consumer are 0)."""
        producer = min_consumer = 0
        bad_consumers = []
        for number, wire, field in _proto_fields(value):
            if number in (1, 2):
                _check_wire('VersionDef', number, wire, 0)
                if number == 1:
                    producer = _int64(field)
                else:
                    min_consumer = _int64(field)
            elif number == 3 and wire == 2:  # packed repeated int32
                pos = 0
                while pos < len(field):
                    item, pos = _varint(field, pos)
                    bad_consumers.append(_int64(item))
            elif number == 3:
                _check_wire('VersionDef', number, wire, 0)
                bad_consumers.append(_int64(field))
        if producer < 0 or min_consumer > BUNDLE_VERSION or BUNDLE_VERSION in bad_consumers:
            raise TFCheckpointError(f'{source} is in a TensorFlow checkpoint format version (producer {producer}, '
                                    f'min_consumer {min_consumer}, bad_consumers {bad_consumers}) that this reader '
                                    f'(version {BUNDLE_VERSION}) does not support; convert with TensorFlow installed')

    def _parse_entry(self, value: bytes, name: str) -> dict:
        entry = {'dtype': 0, 'shape': [], 'shard': 0, 'offset': 0, 'size': 0, 'crc32c': 0}
        what = f'entry of "{_short(name)}"'
        for number, wire, field in _proto_fields(value):
            if number in (1, 3, 4, 5):
                _check_wire(what, number, wire, 0)
                entry[{1: 'dtype', 3: 'shard', 4: 'offset', 5: 'size'}[number]] = _int64(field)
            elif number == 2:
                _check_wire(what, number, wire, 2)
                entry['shape'] = self._parse_shape(field, name)
            elif number == 6:
                _check_wire(what, number, wire, 5)
                entry['crc32c'] = field
            elif number == 7:
                _check_wire(what, number, wire, 2)
                entry['sliced'] = True
        if not 0 <= entry['shard'] < self._num_shards:
            raise _Malformed(f'"{name}" is in data shard {entry["shard"]} of {self._num_shards}')
        if entry['offset'] < 0 or entry['size'] < 0:
            raise _Malformed(f'"{name}" has offset {entry["offset"]} and size {entry["size"]}')
        return entry

    @staticmethod
    def _parse_shape(value: bytes, name: str) -> List[int]:
        shape = []
        for number, wire, dim in _proto_fields(value):
            if number == 2:
                _check_wire(f'shape of "{name}"', number, wire, 2)
                size = 0
                for dim_number, dim_wire, dim_field in _proto_fields(dim):
                    if dim_number == 1:
                        _check_wire(f'shape of "{name}"', dim_number, dim_wire, 0)
                        size = _int64(dim_field)
                if size < 0:
                    raise _Malformed(f'"{name}" has a dimension of size {size}')
                shape.append(size)
            elif number == 3 and wire == 0 and dim:
                raise _Malformed(f'"{name}" has an unknown rank')
        return shape

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
        """The variable ``name`` as a numpy array (shape and dtype as stored), its crc32c checked."""
        entry = self._entry(name)
        dtype = np.dtype(TF_DTYPES[entry['dtype']]).newbyteorder('<') if entry['dtype'] in TF_DTYPES else None
        if dtype is None or entry.get('sliced'):
            what = 'is partitioned' if entry.get('sliced') else f'has unsupported dtype code {entry["dtype"]}'
            raise TFCheckpointError(f'TensorFlow checkpoint {self.prefix}: variable "{name}" {what}')
        if math.prod(entry['shape']) * dtype.itemsize != entry['size']:
            raise TFCheckpointError(f'TensorFlow checkpoint index {self.index_file} records {entry["size"]} bytes '
                                    f'for variable "{name}" of shape {entry["shape"]} ({dtype.name}); '
                                    f'{DOWNLOAD_AGAIN}')
        data = np.empty(entry['size'], np.uint8)
        self._read_checked(name, entry, data)
        return data.view(dtype).reshape(entry['shape'])

    def verify(self, names: Optional[Iterable[str]] = None) -> None:
        """Check the crc32c of the variables ``names`` (default: all) without keeping them in memory."""
        for name in self.names() if names is None else names:
            self._read_checked(name, self._entry(name), None)

    def _shard_file(self, entry: dict) -> str:
        return f'{self.prefix}.data-{entry["shard"]:05d}-of-{self._num_shards:05d}'

    def _read_checked(self, name: str, entry: dict, out: Optional[np.ndarray]) -> None:
        """Read the bytes of ``name`` (into ``out`` when given) and compare their crc32c with the index's."""
        shard = self._shard_file(entry)
        if not osp.isfile(shard):
            raise FileNotFoundError(f'TensorFlow checkpoint {self.prefix}: data file {shard} does not exist (the '
                                    '.index and .data-* files must sit side by side)')
        start, size = entry['offset'], entry['size']
        crc = 0
        with open(shard, 'rb') as f:
            f.seek(start)
            for pos in range(0, size, READ_CHUNK):
                chunk = f.read(min(READ_CHUNK, size - pos))
                if len(chunk) != min(READ_CHUNK, size - pos):
                    raise TFCheckpointError(f'TensorFlow checkpoint {self.prefix}: {shard} is truncated (variable '
                                            f'"{name}" needs bytes {start}..{start + size}); delete the checkpoint '
                                            'and download it again')
                crc = crc32c(chunk, crc)
                if out is not None:
                    out[pos:pos + len(chunk)] = np.frombuffer(chunk, np.uint8)
        expected = unmask_crc(entry['crc32c'])
        if crc != expected:
            raise TFCheckpointError(f'TensorFlow checkpoint data file {shard} is damaged: variable "{name}" (bytes '
                                    f'{start}..{start + size}) has crc32c {crc:08x}, but the index records '
                                    f'{expected:08x}; delete the checkpoint and download it again')
