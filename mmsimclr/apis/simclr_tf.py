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
  Depth (50/101/152) and width come from the checkpoint; anything else (selective kernels, a different variable
  count or shape) is refused with the reason.

Model zoo: entries with ``Converter: simclr_tf`` publish the archive's URL; :func:`fetch_converted` downloads it
once, converts it into the cache and records the converted file's sha256 next to it (checked before every use).
"""
import io
import os
import os.path as osp
import re
import tempfile
import urllib.parse
import zipfile
from typing import Dict, List, Optional, Tuple

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


def _layers_by_index(ckpt: TFCheckpoint, kind: str) -> List[str]:
    """Scopes ``base_model/<kind>[_n]`` sorted by creation index n (``conv2d`` is 0)."""
    found = {}
    for name in ckpt.names():
        if not name.startswith(BASE_SCOPE):
            continue
        layer = name[len(BASE_SCOPE):].split('/')[0]
        match = _INDEXED.match(layer)
        if match and match.group(1) == kind:
            found[int(match.group(2) or 0)] = BASE_SCOPE + layer
    if sorted(found) != list(range(len(found))):
        missing = sorted(set(range(max(found, default=-1) + 1)) - set(found))
        raise TFCheckpointError(f'TensorFlow checkpoint {ckpt.prefix}: {kind} layers {missing[:5]} are missing; '
                                'not a complete SimCLR ResNet checkpoint')
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


def convert_simclr_tf(ckpt: TFCheckpoint) -> Tuple[Dict[str, torch.Tensor], dict]:
    """mmsimclr state dict (``backbone.*``, ``head.fc.*``) and architecture facts of a SimCLR TF checkpoint.

    Returns:
        ``(state_dict, arch)`` where ``arch`` has ``depth``, ``stem_channels`` (= ``base_channels``),
        ``width_multiplier``, ``num_classes`` and ``feat_dim``.

    Raises:
        TFCheckpointError: not a SimCLR ResNet v1 checkpoint (missing variables, selective kernels, shapes that do
            not follow ``resnet.py``'s creation order).
    """
    conv_scopes = _layers_by_index(ckpt, 'conv2d')
    bn_scopes = _layers_by_index(ckpt, 'batch_normalization')
    num_blocks, rest = divmod(len(conv_scopes) - 5, 3)  # stem + 4 projections + 3 per block
    if rest or num_blocks not in STAGE_BLOCKS or len(bn_scopes) != len(conv_scopes):
        raise TFCheckpointError(
            f'TensorFlow checkpoint {ckpt.prefix} has {len(conv_scopes)} convolutions and {len(bn_scopes)} batch '
            'norms under base_model/: not a SimCLR ResNet-50/101/152 v1 without selective kernels (SimCLRv2 "sk1" '
            'models and ResNet-18/34 are not supported)')
    depth, stage_blocks = STAGE_BLOCKS[num_blocks]
    conv_names, bn_names = mmpretrain_resnet_layers(stage_blocks)
    stem_channels = ckpt.shape(conv_scopes[0] + '/kernel')[-1]
    state = {}
    for scope, target in zip(conv_scopes, conv_names):
        kernel = ckpt.read(scope + '/kernel')
        if kernel.ndim != 4:
            raise TFCheckpointError(f'{ckpt.prefix}: {scope}/kernel has shape {kernel.shape}, not a 2-D convolution')
        state[f'backbone.{target}.weight'] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    for scope, target in zip(bn_scopes, bn_names):
        for tf_name, torch_name in BN_PARTS:
            state[f'backbone.{target}.{torch_name}'] = torch.from_numpy(ckpt.read(f'{scope}/{tf_name}'))
        state[f'backbone.{target}.num_batches_tracked'] = torch.tensor(0, dtype=torch.long)
    _check_shapes(state, ckpt.prefix, stem_channels, stage_blocks)
    feat_dim = stem_channels * 8 * 4
    num_classes = None
    if HEAD_KERNEL in ckpt:
        kernel = ckpt.read(HEAD_KERNEL)
        if kernel.shape[0] != feat_dim:
            raise TFCheckpointError(f'{ckpt.prefix}: {HEAD_KERNEL} has shape {kernel.shape}, expected '
                                    f'({feat_dim}, classes) on the {feat_dim}-d pooled features')
        num_classes = kernel.shape[1]
        state['head.fc.weight'] = torch.from_numpy(np.ascontiguousarray(kernel.T))
        state['head.fc.bias'] = torch.from_numpy(ckpt.read(HEAD_BIAS)) if HEAD_BIAS in ckpt else \
            torch.zeros(num_classes)
    arch = dict(depth=depth, stem_channels=stem_channels, base_channels=stem_channels,
                width_multiplier=stem_channels / 64, num_classes=num_classes, feat_dim=feat_dim)
    return state, arch


def _check_shapes(state: dict, source: str, width: int, stage_blocks) -> None:
    """Every converted conv / BN has the shape mmpretrain's ResNet(stem=base=width) gives it: this is what proves
    the creation-order mapping (a projection taken for a 1x1 of the main branch changes channel counts)."""
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
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise TFCheckpointError(f'TensorFlow checkpoint {source}: {key} would get shape {tuple(state[key].shape)}, '
                                    f'expected {shape}; its variables do not follow the SimCLR resnet.py layout')


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


def convert_file(source: str, dst: str) -> dict:
    """Convert ``source`` (prefix, ``.index``, folder or ``.zip``) to an mmsimclr checkpoint at ``dst`` (written
    atomically). Returns the architecture facts (see :func:`convert_simclr_tf`)."""
    with tempfile.TemporaryDirectory(dir=osp.dirname(osp.abspath(dst)) or None) as tmp:
        if osp.isfile(source) and zipfile.is_zipfile(source):
            prefix = _extract_checkpoint(source, tmp)
        else:
            prefix = resolve_prefix(source)
        state, arch = convert_simclr_tf(TFCheckpoint(prefix))
    buffer = io.BytesIO()
    torch.save({'state_dict': state, 'meta': {'converted_from': osp.basename(prefix),
                                               'converter': 'mmsimclr.apis.simclr_tf', **arch}}, buffer)
    atomic_write_bytes(dst, buffer.getvalue())
    return arch


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
    archive = fetch_checkpoint(url, progress=progress, check_hash=False)
    convert_file(archive, dst)
    atomic_write_text(record, f'{sha256_of(dst)}  {osp.basename(dst)}\n')
    if osp.dirname(osp.abspath(archive)) == cache_dir():  # a downloaded copy (never a folder mirror's file)
        os.remove(archive)
    return dst


WEIGHT_CONVERTERS['simclr_tf'] = fetch_converted


def default_output_name(source: str, suffix: Optional[str] = None) -> str:
    """``ResNet50_1x/model.ckpt-225206`` -> ``ResNet50_1x_mmsimclr.pth`` (named after the folder or archive)."""
    base = source.rstrip('/\\')
    if base.endswith('.zip'):
        name = osp.splitext(osp.basename(base))[0]
    elif osp.isdir(base):
        name = osp.basename(osp.abspath(base))
    else:
        name = osp.basename(osp.dirname(osp.abspath(base))) or 'simclr_tf'
    return f'{name}{suffix or "_mmsimclr"}.pth'


__all__ = ['convert_simclr_tf', 'convert_file', 'fetch_converted', 'resolve_prefix', 'mmpretrain_resnet_layers',
           'default_output_name']
