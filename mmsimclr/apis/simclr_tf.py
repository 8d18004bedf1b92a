"""The SimCLR paper's TensorFlow checkpoints (google-research/simclr) as mmsimclr classifiers.

Conversion (no TensorFlow needed; :class:`mmsimclr.utils.tf_checkpoint.TFCheckpoint` reads the files):

- Source: a TF checkpoint prefix (``ResNet50_1x/model.ckpt-225206``), its ``.index`` file, a folder holding one
  checkpoint, a TF-Hub module folder (``hub/``: its ``variables/variables.*``) or the published ``.zip``.
- Variables: ``tf.layers`` named them by creation order under ``base_model/`` (``conv2d``, ``conv2d_1``, ...;
  ``batch_normalization``, ``batch_normalization_1``, ... with ``gamma``/``beta``/``moving_mean``/
  ``moving_variance``), the classifier ``head_supervised/linear_layer/dense/{kernel,bias}``. ``resnet.py`` creates,
  per bottleneck block, the projection shortcut first (first block of a group only), then the 1x1, 3x3 and 1x1
  convolutions, each followed by its batch norm; so the n-th convolution (numeric suffix, not name order) maps to
  the n-th of: stem, then per block ``downsample.0`` (first block), ``conv1``, ``conv2``, ``conv3``, and the same
  for batch norms. Optimizer slots (``.../Momentum``) and ``global_step`` are ignored.
- Layouts: conv kernels ``[kh, kw, in, out]`` -> ``[out, in, kh, kw]``; dense ``[in, out]`` -> ``[out, in]``.
- Result: ``{'state_dict': ..., 'meta': {...}}`` with mmpretrain ``ResNet`` keys under ``backbone.`` and
  ``head.fc.{weight,bias}``: it loads into the ``configs/simclr-tf`` classifiers (:class:`ResNetTFStem` backbone).
  Depth (50/101/152) and width come from the checkpoint; anything else (a different variable count or shape) is
  refused with the reason.

:func:`convert_file` (and ``tools/model_converters/simclr_tf_to_mmsimclr.py``) also take SimCLRv2 checkpoints
(selective kernels, the 3-layer projection head): it tells the two apart and hands those to
:mod:`mmsimclr.apis.simclrv2_tf`, which reuses the helpers here.

Model zoo: entries with ``Converter: simclr_tf`` publish the archive's URL; :func:`fetch_converted` downloads it
once, converts it into the cache and records the converted file's sha256 next to it (checked before every use,
:func:`convert_once`).
"""
import io
import os
import os.path as osp
import re
import tempfile
import urllib.parse
import zipfile
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from mmsimclr.utils.atomic_file import atomic_write_bytes, atomic_write_text
from mmsimclr.utils.tf_checkpoint import TFCheckpoint, TFCheckpointError
from .download import ChecksumError, cache_dir, fetch_checkpoint, sha256_of
from .model_zoo import WEIGHT_CONVERTERS

BASE_SCOPE = 'base_model/'
HEAD_KERNEL = 'head_supervised/linear_layer/dense/kernel'
HEAD_BIAS = 'head_supervised/linear_layer/dense/bias'
#: bottleneck blocks per stage, by number of blocks in all (resnet.py's depths 50 / 101 / 152)
STAGE_BLOCKS = {16: (50, (3, 4, 6, 3)), 33: (101, (3, 4, 23, 3)), 50: (152, (3, 8, 36, 3))}
BN_PARTS = (('gamma', 'weight'), ('beta', 'bias'), ('moving_mean', 'running_mean'),
            ('moving_variance', 'running_var'))
_INDEXED = re.compile(r'^(conv2d|batch_normalization)(?:_(\d+))?$')


def _layers_by_index(ckpt: TFCheckpoint, kind: str, scope: str = BASE_SCOPE) -> List[str]:
    """Scopes ``<scope><kind>[_n]`` sorted by creation index n (``conv2d`` is 0)."""
    found = {}
    for name in ckpt.names():
        if not name.startswith(scope):
            continue
        layer = name[len(scope):].split('/')[0]
        match = _INDEXED.match(layer)
        if match and match.group(1) == kind:
            found[int(match.group(2) or 0)] = scope + layer
    if sorted(found) != list(range(len(found))):
        missing = sorted(set(range(max(found, default=-1) + 1)) - set(found))
        raise TFCheckpointError(f'TensorFlow checkpoint {ckpt.prefix}: {kind} layers {missing[:5]} are missing '
                                f'under {scope}; not a complete SimCLR ResNet checkpoint')
    return [found[i] for i in range(len(found))]


def mmpretrain_resnet_layers(stage_blocks) -> Tuple[List[str], List[str]]:
    """Conv and BN module names of mmpretrain's bottleneck ``ResNet`` in the paper's creation order."""
    convs, bns = ['conv1'], ['bn1']
    for stage, blocks in enumerate(stage_blocks, start=1):
        for block in range(blocks):
            prefix = f'layer{stage}.{block}.'
            if block == 0:
                convs.append(prefix + 'downsample.0')
                bns.append(prefix + 'downsample.1')
            convs += [prefix + 'conv1', prefix + 'conv2', prefix + 'conv3']
            bns += [prefix + 'bn1', prefix + 'bn2', prefix + 'bn3']
    return convs, bns


def conv_weight(ckpt: TFCheckpoint, name: str) -> torch.Tensor:
    """A TF conv kernel ``[kh, kw, in, out]`` as a PyTorch weight ``[out, in, kh, kw]``."""
    kernel = ckpt.read(name)
    if kernel.ndim != 4:
        raise TFCheckpointError(f'{ckpt.prefix}: {name} has shape {kernel.shape}, not a 2-D convolution')
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def dense_weight(ckpt: TFCheckpoint, name: str) -> torch.Tensor:
    """A TF dense kernel ``[in, out]`` as a PyTorch ``Linear`` weight ``[out, in]``."""
    kernel = ckpt.read(name)
    if kernel.ndim != 2:
        raise TFCheckpointError(f'{ckpt.prefix}: {name} has shape {kernel.shape}, not a dense kernel')
    return torch.from_numpy(np.ascontiguousarray(kernel.T))


def bn_state(ckpt: TFCheckpoint, scope: str, target: str) -> Dict[str, torch.Tensor]:
    """``<target>.{weight,bias,running_mean,running_var,num_batches_tracked}`` of the TF batch norm ``scope``
    (``bias`` only where TF has ``beta``: a BN built with ``center=False`` has none)."""
    state = {}
    for tf_name, torch_name in BN_PARTS:
        if tf_name == 'beta' and f'{scope}/beta' not in ckpt:
            continue
        state[f'{target}.{torch_name}'] = torch.from_numpy(ckpt.read(f'{scope}/{tf_name}'))
    state[f'{target}.num_batches_tracked'] = torch.tensor(0, dtype=torch.long)
    return state


def map_layers(ckpt: TFCheckpoint, conv_scopes, bn_scopes, conv_names, bn_names,
               prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """The state dict that puts the i-th TF conv / BN into the i-th module name."""
    state = {}
    for scope, target in zip(conv_scopes, conv_names):
        state[f'{prefix}{target}.weight'] = conv_weight(ckpt, scope + '/kernel')
    for scope, target in zip(bn_scopes, bn_names):
        state.update(bn_state(ckpt, scope, prefix + target))
    return state


def check_shapes(state: dict, expected: Dict[str, tuple], source: str) -> None:
    """Every converted tensor has the shape the architecture gives it: this is what proves a creation-order mapping
    (a projection taken for a 1x1 of the main branch, or an SK layer for another, changes channel counts)."""
    for key, shape in expected.items():
        if tuple(state[key].shape) != tuple(shape):
            raise TFCheckpointError(f'TensorFlow checkpoint {source}: {key} would get shape {tuple(state[key].shape)}, '
                                    f'expected {tuple(shape)}; its variables do not follow the SimCLR resnet.py layout')


def convert_v1_backbone(ckpt: TFCheckpoint, scope: str = BASE_SCOPE) -> Tuple[Dict[str, torch.Tensor], dict]:
    """``backbone.*`` of a ResNet without selective kernels (SimCLR v1; SimCLRv2 ``sk0``) under ``scope``, and its
    ``depth``, ``stem_channels`` (= ``base_channels``), ``width_multiplier``, ``feat_dim``."""
    conv_scopes = _layers_by_index(ckpt, 'conv2d', scope)
    bn_scopes = _layers_by_index(ckpt, 'batch_normalization', scope)
    num_blocks, rest = divmod(len(conv_scopes) - 5, 3)  # stem + 4 projections + 3 per block
    if rest or num_blocks not in STAGE_BLOCKS or len(bn_scopes) != len(conv_scopes):
        raise TFCheckpointError(
            f'TensorFlow checkpoint {ckpt.prefix} has {len(conv_scopes)} convolutions and {len(bn_scopes)} batch '
            f'norms under {scope}: not a SimCLR ResNet-50/101/152 (ResNet-18/34 are not supported)')
    depth, stage_blocks = STAGE_BLOCKS[num_blocks]
    conv_names, bn_names = mmpretrain_resnet_layers(stage_blocks)
    width = ckpt.shape(conv_scopes[0] + '/kernel')[-1]
    state = map_layers(ckpt, conv_scopes, bn_scopes, conv_names, bn_names)
    _check_shapes(state, ckpt.prefix, width, stage_blocks)
    return state, dict(depth=depth, stem_channels=width, base_channels=width, width_multiplier=width / 64,
                       feat_dim=width * 8 * 4)


def linear_head_state(ckpt: TFCheckpoint, *in_dims: int) -> Tuple[Dict[str, torch.Tensor], Optional[int]]:
    """``head.fc.{weight,bias}`` of ``head_supervised/linear_layer`` (its input size one of ``in_dims``) and its
    class count; empty and None when the checkpoint has no such head."""
    if HEAD_KERNEL not in ckpt:
        return {}, None
    kernel_shape = ckpt.shape(HEAD_KERNEL)
    if len(kernel_shape) != 2 or kernel_shape[0] not in in_dims:
        raise TFCheckpointError(f'{ckpt.prefix}: {HEAD_KERNEL} has shape {kernel_shape}, expected '
                                f'({" or ".join(map(str, in_dims))}, classes) on the model\'s features')
    num_classes = kernel_shape[1]
    bias = torch.from_numpy(ckpt.read(HEAD_BIAS)) if HEAD_BIAS in ckpt else torch.zeros(num_classes)
    return {'head.fc.weight': dense_weight(ckpt, HEAD_KERNEL), 'head.fc.bias': bias}, num_classes


def convert_simclr_tf(ckpt: TFCheckpoint) -> Tuple[Dict[str, torch.Tensor], dict]:
    """mmsimclr state dict (``backbone.*``, ``head.fc.*``) and architecture facts of a SimCLR (v1) TF checkpoint.

    Returns:
        ``(state_dict, arch)`` where ``arch`` has ``depth``, ``stem_channels`` (= ``base_channels``),
        ``width_multiplier``, ``num_classes`` and ``feat_dim``.

    Raises:
        TFCheckpointError: not a SimCLR ResNet v1 checkpoint (missing variables, selective kernels, shapes that do
            not follow ``resnet.py``'s creation order).
    """
    if BASE_SCOPE + 'conv2d/kernel' in ckpt and ckpt.shape(BASE_SCOPE + 'conv2d/kernel')[:2] == (3, 3):
        raise TFCheckpointError(f'TensorFlow checkpoint {ckpt.prefix} has a 3x3 stem: a SimCLRv2 model with '
                                'selective kernels; convert it with mmsimclr.apis.simclrv2_tf (or convert_file)')
    state, arch = convert_v1_backbone(ckpt)
    head, num_classes = linear_head_state(ckpt, arch['feat_dim'])
    state.update(head)
    return state, dict(arch, num_classes=num_classes)


def _check_shapes(state: dict, source: str, width: int, stage_blocks) -> None:
    """Shapes mmpretrain's ResNet(stem=base=width) gives every converted conv / BN (see :func:`check_shapes`)."""
    expected = {'backbone.conv1.weight': (width, 3, 7, 7), 'backbone.bn1.weight': (width,)}
    in_ch = width
    for stage, blocks in enumerate(stage_blocks, start=1):
        planes = width << (stage - 1)
        for block in range(blocks):
            p = f'backbone.layer{stage}.{block}.'
            if block == 0:
                expected[p + 'downsample.0.weight'] = (planes * 4, in_ch, 1, 1)
                expected[p + 'downsample.1.weight'] = (planes * 4,)
            expected.update({p + 'conv1.weight': (planes, in_ch, 1, 1), p + 'bn1.weight': (planes,),
                             p + 'conv2.weight': (planes, planes, 3, 3), p + 'bn2.weight': (planes,),
                             p + 'conv3.weight': (planes * 4, planes, 1, 1), p + 'bn3.weight': (planes * 4,)})
            in_ch = planes * 4
    check_shapes(state, expected, source)


def _find_index(folder: str) -> str:
    """The checkpoint prefix inside a folder: ``variables/variables`` of a TF-Hub module, else the one ``*.index``
    (an unzipped ``ResNet50_1x/`` holds ``model.ckpt-N`` and ``hub/``: the checkpoint is taken)."""
    indexes = []
    for root, _, files in os.walk(folder):
        indexes += [osp.join(root, f[:-len('.index')]) for f in files if f.endswith('.index')]
    plain = [p for p in indexes if osp.basename(p) != 'variables']
    chosen = plain or indexes
    if len(chosen) != 1:
        what = 'no' if not chosen else f'{len(chosen)} ({", ".join(sorted(chosen)[:3])})'
        raise FileNotFoundError(f'{folder} holds {what} TensorFlow checkpoints (*.index files); pass the prefix of '
                                'the one to convert')
    return chosen[0]


def resolve_prefix(source: str) -> str:
    """Checkpoint prefix of a prefix, ``.index`` file or folder (see the module docstring)."""
    if osp.isdir(source):
        return _find_index(source)
    if source.endswith('.index'):
        source = source[:-len('.index')]
    if osp.isfile(source + '.index'):
        return source
    raise FileNotFoundError(f'{source} is not a TensorFlow checkpoint: neither a folder nor a prefix with a '
                            '.index file next to it (pass e.g. ResNet50_1x/model.ckpt-225206, ResNet50_1x/hub or '
                            'the .zip)')


def _extract_checkpoint(archive: str, folder: str) -> str:
    """Extract the checkpoint files of a published zip into ``folder`` (CRC-32 checked by ``zipfile``)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if not n.endswith('/')]
            indexes = [n[:-len('.index')] for n in names if n.endswith('.index')]
            plain = [p for p in indexes if osp.basename(p) != 'variables'] or indexes
            if len(plain) != 1:
                raise FileNotFoundError(f'{archive} holds {len(plain)} TensorFlow checkpoints; expected one')
            wanted = [n for n in names if n.startswith(plain[0] + '.')]
            for name in wanted:
                zf.extract(name, folder)  # raises BadZipFile on a CRC-32 mismatch
    except zipfile.BadZipFile as e:
        raise TFCheckpointError(f'{archive} is not an intact zip archive ({e}); delete it and download it '
                                'again') from e
    return osp.join(folder, *plain[0].split('/'))


def convert_file(source: str, dst: str, ema: bool = False) -> dict:
    """Convert ``source`` (prefix, ``.index``, folder or ``.zip``) to an mmsimclr checkpoint at ``dst`` (written
    atomically). SimCLRv2 checkpoints (selective kernels or a ``head_contrastive/`` projection head) are recognised
    and converted by :func:`mmsimclr.apis.simclrv2_tf.convert_simclrv2_tf`; ``ema`` (v2 only) takes its
    ``ema_model/`` copy. Returns the architecture facts (see :func:`convert_simclr_tf`; v2 adds more)."""
    with tempfile.TemporaryDirectory(dir=osp.dirname(osp.abspath(dst)) or None) as tmp:
        if osp.isfile(source) and zipfile.is_zipfile(source):
            prefix = _extract_checkpoint(source, tmp)
        else:
            prefix = resolve_prefix(source)
        ckpt = TFCheckpoint(prefix)
        from . import simclrv2_tf  # it imports this module's helpers: imported here, not at module level
        if ema or simclrv2_tf.is_simclrv2(ckpt):
            state, arch = simclrv2_tf.convert_simclrv2_tf(ckpt, ema=ema)
            converter = simclrv2_tf.__name__
        else:
            state, arch = convert_simclr_tf(ckpt)
            converter = __name__
    buffer = io.BytesIO()
    torch.save({'state_dict': state, 'meta': {'converted_from': osp.basename(prefix), 'converter': converter,
                                               **arch}}, buffer)
    atomic_write_bytes(dst, buffer.getvalue())
    return arch


def convert_once(url: str, dst: str, produce: Callable[[], None]) -> str:
    """``dst``, made by ``produce()`` on first use, after which the sha256 of ``dst`` is recorded in
    ``<dst>.sha256``; later calls check ``dst`` against it (a mismatch deletes both with an error, so the next call
    converts afresh)."""
    record = dst + '.sha256'
    if osp.isfile(dst) and osp.isfile(record):
        with open(record, encoding='utf-8') as f:
            expected = f.read().split()[0]
        actual = sha256_of(dst)
        if actual != expected:
            os.remove(dst)
            os.remove(record)
            raise ChecksumError(f'Converted checkpoint {dst} (from {url}) has sha256 {actual}, but {expected} was '
                                'recorded when it was converted: it changed on disk. It has been deleted; run again '
                                'to download and convert it afresh.')
        return dst
    produce()
    atomic_write_text(record, f'{sha256_of(dst)}  {osp.basename(dst)}\n')
    return dst


def fetch_converted(url: str, progress: bool = True) -> str:
    """Zoo hook: the converted checkpoint for a published SimCLR TF archive ``url``, converted on first use.

    The archive is downloaded into the cache (through ``$MMSIMCLR_MIRROR`` when set), its members' CRC-32s are
    checked while extracting (the bucket publishes no checksum in the URL), it is converted to
    ``<cache>/<archive stem>_mmsimclr.pth``, the sha256 of that file is written to ``<that>.sha256``, and the
    archive is deleted. Later calls check the converted file against the recorded sha256 (a mismatch deletes it
    with an error; the next call converts afresh).
    """
    stem = osp.splitext(osp.basename(urllib.parse.urlparse(url).path))[0]
    dst = osp.join(cache_dir(), f'{stem}_mmsimclr.pth')

    def produce():
        archive = fetch_checkpoint(url, progress=progress, check_hash=False)
        convert_file(archive, dst)
        if osp.dirname(osp.abspath(archive)) == cache_dir():  # a downloaded copy (never a folder mirror's file)
            os.remove(archive)

    return convert_once(url, dst, produce)


def _fetch_converted_v2(url: str, progress: bool = True) -> str:
    """The ``simclrv2_tf`` zoo converter, :func:`mmsimclr.apis.simclrv2_tf.fetch_converted` (registered here, where
    :mod:`mmsimclr.apis.model` imports the converters; that module imports this one)."""
    from .simclrv2_tf import fetch_converted as fetch_v2
    return fetch_v2(url, progress)


WEIGHT_CONVERTERS['simclr_tf'] = fetch_converted
WEIGHT_CONVERTERS['simclrv2_tf'] = _fetch_converted_v2


def default_output_name(source: str, suffix: Optional[str] = None) -> str:
    """``ResNet50_1x/model.ckpt-225206`` -> ``ResNet50_1x_mmsimclr.pth`` (named after the folder or archive; a
    TF-Hub ``hub/`` folder after the folder that holds it)."""
    base = source.rstrip('/\\')
    if base.endswith('.zip'):
        name = osp.splitext(osp.basename(base))[0]
    elif osp.isdir(base):
        name = osp.basename(osp.abspath(base))
        if name == 'hub':
            name = osp.basename(osp.dirname(osp.abspath(base))) or name
    else:
        name = osp.basename(osp.dirname(osp.abspath(base))) or 'simclr_tf'
    return f'{name}{suffix or "_mmsimclr"}.pth'


__all__ = ['convert_simclr_tf', 'convert_file', 'fetch_converted', 'resolve_prefix', 'mmpretrain_resnet_layers',
           'default_output_name', 'convert_once']
