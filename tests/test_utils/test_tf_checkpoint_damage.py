"""Damaged TensorFlow checkpoints are refused as TensorFlow refuses them (crc32c of every index block and tensor).

Damage is applied to copies of the SimCLR fixture (tests/data/simclr_tf, written by TensorFlow 2.21) at
deterministic offsets: a damaged tensor must never be converted silently into other weights, and any damage in the
index must end in a :class:`TFCheckpointError` naming the index file (never a raw ``UnicodeDecodeError``,
``IndexError``, ``struct.error``...), unless the damaged bytes are genuinely unused and every read is unchanged.
"""
import os.path as osp
import shutil
import struct

import numpy as np
import pytest

from mmsimclr.apis.simclr_tf import convert_file
from mmsimclr.utils.tf_checkpoint import FOOTER_SIZE, TFCheckpoint, TFCheckpointError, crc32c, mask_crc, unmask_crc

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PREFIX = osp.join(REPO, 'tests/data/simclr_tf/model.ckpt-7')
INDEX, DATA = '.index', '.data-00000-of-00001'
#: tensors the converter reads (stem conv, a middle BN statistic, the classifier), damaged at their first, middle
#: and last byte
CONVERTED = ('base_model/conv2d/kernel', 'base_model/batch_normalization_20/moving_variance',
             'head_supervised/linear_layer/dense/kernel')


@pytest.fixture(scope='module')
def undamaged():
    ckpt = TFCheckpoint(PREFIX)
    return ckpt, {name: ckpt.read(name) for name in ckpt.names()}


def copy_checkpoint(tmp_path, name='model.ckpt-7') -> str:
    prefix = str(tmp_path / name)
    for suffix in (INDEX, DATA):
        shutil.copy(PREFIX + suffix, prefix + suffix)
    return prefix


def xor_byte(path: str, offset: int, value: int) -> None:
    with open(path, 'r+b') as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ value]))


def assert_same_content(ckpt: TFCheckpoint, undamaged) -> None:
    reference, arrays = undamaged
    assert ckpt.names() == reference.names()
    for name in ckpt.names():
        array = ckpt.read(name)
        assert array.dtype == arrays[name].dtype and array.shape == arrays[name].shape
        assert np.array_equal(array, arrays[name]), name


def test_undamaged_fixture_verifies_and_reads_as_stored(undamaged):
    # crc32c's standard check value, and the LevelDB / TensorFlow mask round trip
    assert crc32c(b'123456789') == 0xe3069283 and crc32c(b'56789', crc32c(b'1234')) == 0xe3069283
    assert mask_crc(0) == 0xa282ead8 and all(unmask_crc(mask_crc(c)) == c for c in (0, 1, 0xe3069283, 2**32 - 1))
    ckpt, arrays = undamaged
    ckpt.verify()
    assert len(ckpt.names()) == 270 and ckpt.read('global_step') == 7
    raw = open(PREFIX + DATA, 'rb').read()
    for name, array in arrays.items():  # every recorded (masked) crc matches the stored bytes
        entry = ckpt._entries[name]
        stored = raw[entry['offset']:entry['offset'] + entry['size']]
        assert mask_crc(crc32c(stored)) == entry['crc32c']
        assert array.tobytes() == stored and array.flags.writeable


@pytest.mark.parametrize('name', CONVERTED)
def test_damaged_tensor_is_refused(tmp_path, undamaged, name):
    entry = undamaged[0]._entries[name]
    for i, where in enumerate((0, entry['size'] // 2, entry['size'] - 1)):
        folder = tmp_path / str(i)
        folder.mkdir()
        prefix = copy_checkpoint(folder)
        xor_byte(prefix + DATA, entry['offset'] + where, 1 << (i * 3 % 8))  # a single bit
        ckpt = TFCheckpoint(prefix)  # the index is intact
        with pytest.raises(TFCheckpointError, match='damaged') as info:
            ckpt.read(name)
        assert prefix + DATA in str(info.value) and f'"{name}"' in str(info.value)
        other = 'base_model/conv2d_5/kernel'  # intact
        np.testing.assert_array_equal(ckpt.read(other), undamaged[1][other])
        with pytest.raises(TFCheckpointError, match='damaged') as info:
            ckpt.verify()
        assert f'"{name}"' in str(info.value)
        dst = folder / 'out.pth'
        with pytest.raises(TFCheckpointError, match='download it again') as info:
            convert_file(prefix, str(dst))
        assert prefix + DATA in str(info.value) and f'"{name}"' in str(info.value)
        assert not dst.exists()


def test_damage_to_a_tensor_the_converter_skips(tmp_path, undamaged):
    """Like TensorFlow's restore, the converter checks what it reads: a damaged optimizer slot converts (the
    weights are intact), ``verify()`` still finds it."""
    name = 'head_supervised/linear_layer/dense/kernel/Momentum'
    prefix = copy_checkpoint(tmp_path)
    xor_byte(prefix + DATA, undamaged[0]._entries[name]['offset'] + 5, 0x10)
    convert_file(prefix, str(tmp_path / 'out.pth'))
    with pytest.raises(TFCheckpointError, match=f'{prefix + DATA}.*"{name}"'):
        TFCheckpoint(prefix).verify()


def _open_or_refuse(prefix: str):
    """The checkpoint, or None when it is refused with a TFCheckpointError naming the index (anything else
    propagates and fails the test)."""
    try:
        return TFCheckpoint(prefix)
    except TFCheckpointError as e:
        assert prefix + INDEX in str(e), str(e)
        return None


def test_every_damaged_index_byte_is_refused_or_unused(tmp_path, undamaged):
    """One flipped byte at a time (every byte, a seeded non-zero XOR): a TFCheckpointError naming the index, or, for
    the footer's zero padding only, an unchanged checkpoint."""
    prefix = copy_checkpoint(tmp_path)
    index = prefix + INDEX
    size = osp.getsize(index)
    values = np.random.default_rng(0).integers(1, 256, size)
    padding = range(size - FOOTER_SIZE + 6, size - 8)  # the fixture's four block handles take 6 bytes
    silent = []
    for offset in range(size):
        xor_byte(index, offset, int(values[offset]))
        ckpt = _open_or_refuse(prefix)
        if ckpt is not None:
            assert_same_content(ckpt, undamaged)
            silent.append(offset)
        xor_byte(index, offset, int(values[offset]))  # undo
    assert silent == list(padding)  # LevelDB and TensorFlow ignore the footer's padding too


def test_damaged_index_spans_are_refused(tmp_path, undamaged):
    """Runs of 1-8 random bytes written at seeded offsets."""
    prefix = copy_checkpoint(tmp_path)
    index = prefix + INDEX
    original = open(index, 'rb').read()
    rng = np.random.default_rng(1)
    for _ in range(300):
        length = int(rng.integers(1, 9))
        offset = int(rng.integers(0, len(original) - length + 1))
        damaged = bytearray(original)
        damaged[offset:offset + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        open(index, 'wb').write(bytes(damaged))
        ckpt = _open_or_refuse(prefix)
        if ckpt is not None:
            assert_same_content(ckpt, undamaged)


def _reseal(table: bytearray, offset: int, size: int) -> None:
    """Recompute a block's trailer crc (the damage then looks like a buggy writer's, not a bad download)."""
    struct.pack_into('<I', table, offset + size + 1, mask_crc(crc32c(bytes(table[offset:offset + size + 1]))))


def test_malformed_index_with_valid_checksums_is_refused_clearly(tmp_path, undamaged):
    """Damage that passes the block checksum (resealed) exercises the parser itself: the only exception anywhere
    (opening, listing, reading every changed entry) is a TFCheckpointError naming a file."""
    prefix = copy_checkpoint(tmp_path)
    index = prefix + INDEX
    original = bytearray(open(index, 'rb').read())
    entries = undamaged[0]._entries
    block_size = 9568  # the fixture's one data block: bytes 0..9568, its trailer after it
    assert struct.unpack_from('<I', original, block_size + 1)[0] == mask_crc(crc32c(bytes(original[:block_size + 1])))
    values = np.random.default_rng(2).integers(1, 256, block_size)
    opened = 0
    for offset in range(0, block_size, 11):
        damaged = bytearray(original)
        damaged[offset] ^= int(values[offset])
        _reseal(damaged, 0, block_size)
        open(index, 'wb').write(bytes(damaged))
        ckpt = _open_or_refuse(prefix)
        if ckpt is None:
            continue
        opened += 1
        for name in ckpt.names():
            if ckpt._entries[name] != entries.get(name):
                try:
                    ckpt.read(name)
                except TFCheckpointError as e:
                    assert prefix in str(e) and name in str(e), str(e)
    assert opened  # most flips in tensor metadata parse: they are then caught per tensor
