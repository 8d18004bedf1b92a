"""Export the backbone of a SimCLR (pretrain) or linear-classifier checkpoint for use outside mmsimclr.

    python tools/model_converters/export_backbone.py CHECKPOINT OUT [--format mmpretrain|torchvision]
        [--config CONFIG]

CHECKPOINT: a checkpoint written by tools/train.py (or mmpretrain/mmselfsup, published files included) whose
``state_dict`` holds ``backbone.*`` keys: a SimCLR model (``backbone.*``, ``neck.*``) or an ImageClassifier
(``backbone.*``, ``head.fc.*``). It is read weights-only (mmsimclr.utils.checkpoint.safe_torch_load).

--format mmpretrain (default): ``{'state_dict': backbone weights, 'meta': {...}}`` with the ``backbone.`` prefix
    removed, as OpenMMLab's own backbone-extraction tools write it. Any backbone type. Use it with
        backbone=dict(type='ResNet', depth=50, ...,
                      init_cfg=dict(type='Pretrained', checkpoint=OUT))        # no prefix: already stripped
    in mmpretrain, mmdet or mmseg (their ResNet keys are the same).

--format torchvision: a plain state dict for ``torchvision.models.resnet{18,34,50,101,152}`` (the tool prints
    which). mmpretrain's ResNet (v1, style='pytorch': stride in the 3x3 conv) is torchvision's ResNet v1.5 with the
    same parameter names, so the weights are copied unchanged after checks that the architecture is one
    torchvision can express (refused: deep_stem / ResNetV1c / ResNetV1d, avg_down, style='caffe' with Bottleneck
    blocks (a BasicBlock strides in its 3x3 conv in either style), non-default strides, dilations, widths or stems
    such as ResNet_CIFAR or reduced-width models, other conv/norm layers). Depths 18/34 (BasicBlock) and
    50/101/152 (Bottleneck) map onto torchvision's resnet18/34/50/101/152.
    * Linear checkpoint: ``fc.weight``/``fc.bias`` come from ``head.fc.*``; load with
          m = torchvision.models.resnet50(num_classes=K); m.load_state_dict(sd)              # strict=True
    * SimCLR pretrain checkpoint: there is no classifier, so the file has no ``fc.*`` keys. Either
          m = torchvision.models.resnet50(); m.fc = torch.nn.Identity(); m.load_state_dict(sd)  # strict=True,
      m(x) is then the 2048-d pooled feature h, or
          m = torchvision.models.resnet50(); m.load_state_dict(sd, strict=False)
      which reports exactly fc.weight and fc.bias missing (fc stays randomly initialised, to be trained).

Inputs for the torchvision model: RGB in [0, 1] normalised with the checkpoint's data_preprocessor mean/std
divided by 255 (printed; the ImageNet configs' values are torchvision's usual (0.485, 0.456, 0.406) /
(0.229, 0.224, 0.225)).

Stride placement (style) and dilations are not visible in the weights: they are checked against the config stored
in the checkpoint (``meta['cfg']``, written by mmengine runners) or --config; without either, mmpretrain's
defaults (style='pytorch') are assumed and a note says so.
"""
import argparse
import io
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from mmsimclr.utils.stored_config import model_config_from_text

#: torchvision constructor -> (block keys in layer1.0 that mark the block type, blocks per stage)
TORCHVISION_RESNETS = {
    'resnet18': ('basic', (2, 2, 2, 2)),
    'resnet34': ('basic', (3, 4, 6, 3)),
    'resnet50': ('bottleneck', (3, 4, 6, 3)),
    'resnet101': ('bottleneck', (3, 4, 23, 3)),
    'resnet152': ('bottleneck', (3, 8, 36, 3)),
}
_DEPTH = {'resnet18': 18, 'resnet34': 34, 'resnet50': 50, 'resnet101': 101, 'resnet152': 152}


class ExportError(ValueError):
    """The checkpoint cannot be exported in the requested format; the message names the file and the reason."""


def read_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], Optional[dict]]:
    """``(state_dict, meta)`` of a checkpoint file, read weights-only; ``meta`` is None when absent."""
    from mmsimclr.utils.checkpoint import safe_torch_load
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint {path} does not exist')
    checkpoint = safe_torch_load(path, map_location='cpu', name=path)
    if not isinstance(checkpoint, dict):
        raise ExportError(f'Checkpoint {path} holds a {type(checkpoint).__name__}, not a dict of weights')
    meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), dict) else None
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        raise ExportError(f'Checkpoint {path}: "state_dict" is a {type(state).__name__}, not a dict of weights')
    # a model saved while wrapped in DistributedDataParallel has every key under "module."
    state = OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in state.items() if torch.is_tensor(v))
    return state, meta


def split_state(state: Dict[str, torch.Tensor], path: str) -> Tuple[Dict, Dict]:
    """``(backbone, head)``: the ``backbone.*`` and ``head.*`` entries with their prefixes removed."""
    backbone = OrderedDict((k[len('backbone.'):], v) for k, v in state.items() if k.startswith('backbone.'))
    if not backbone:
        sample = ', '.join(list(state)[:5]) or 'none'
        raise ExportError(
            f'Checkpoint {path} has no "backbone.*" weights (first keys: {sample}), so it is not a SimCLR or '
            'classifier checkpoint written by mmsimclr/mmpretrain/mmselfsup. If it already is a backbone-only file '
            'it needs no export; otherwise pass the checkpoint that tools/train.py wrote.')
    head = OrderedDict((k[len('head.'):], v) for k, v in state.items() if k.startswith('head.'))
    return backbone, head


def stored_model_config(meta: Optional[dict], config: Optional[str], path: str) -> Optional[dict]:
    """The model config from --config, else from ``meta['cfg']``; None when neither exists."""
    if config:
        from mmengine.config import Config
        return Config.fromfile(config).get('model').to_dict()
    text = (meta or {}).get('cfg')
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return model_config_from_text(text)
    except (SyntaxError, ValueError) as e:  # an unreadable stored config only costs the checks that need it
        print(f'note: could not read the model config stored in {path} ({type(e).__name__}: {e}); the checks that '
              'need it are skipped (pass --config)', file=sys.stderr)
        return None


def _block_counts(backbone: Dict[str, torch.Tensor]) -> Tuple[int, ...]:
    counts = []
    for stage in range(1, 5):
        blocks = {int(m.group(1)) for k in backbone for m in [re.match(rf'layer{stage}\.(\d+)\.', k)] if m}
        counts.append(max(blocks) + 1 if blocks else 0)
    return tuple(counts)


def _check_torchvision_config(backbone_cfg, block: str, path: str) -> None:
    """Refuse settings that torchvision's ResNet cannot express and that the weights alone do not reveal."""
    kind = str(backbone_cfg.get('type', 'ResNet')).split('.')[-1]
    if kind != 'ResNet':
        raise ExportError(f'Checkpoint {path}: backbone type {kind!r} has no torchvision equivalent (only '
                          "mmpretrain's plain 'ResNet' maps onto torchvision.models.resnet*); use "
                          '--format mmpretrain')
    # a BasicBlock strides in its first 3x3 conv whatever the style; a Bottleneck's style moves the stride
    style = backbone_cfg.get('style', 'pytorch') if block == 'basic' else 'pytorch'
    expected = dict(style=style, deep_stem=False, avg_down=False, in_channels=3, stem_channels=64, base_channels=64,
                    strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1), num_stages=4, conv_cfg=None)
    for key, value in expected.items():
        got = backbone_cfg.get(key, value)
        if isinstance(got, list):
            got = tuple(got)
        if got != value:
            raise ExportError(f'Checkpoint {path}: backbone {key}={got!r} has no torchvision ResNet equivalent '
                              f'(torchvision is {key}={value!r}); use --format mmpretrain')
    norm = dict(backbone_cfg.get('norm_cfg') or {})
    norm_type = str(norm.get('type', 'BN')).split('.')[-1]
    if norm_type not in ('BN', 'BN2d', 'SyncBN', 'GlobalBN', 'MMSyncBN'):
        raise ExportError(f'Checkpoint {path}: backbone norm_cfg type {norm_type!r} is not batch norm, which '
                          'torchvision ResNet uses; use --format mmpretrain')
    if norm.get('eps', 1e-5) != 1e-5:
        raise ExportError(f'Checkpoint {path}: backbone batch-norm eps={norm["eps"]} differs from torchvision\'s '
                          '1e-5; use --format mmpretrain')


def to_torchvision(backbone: Dict[str, torch.Tensor], head: Dict[str, torch.Tensor], model_cfg,
                   path: str) -> Tuple[OrderedDict, str, Optional[int]]:
    """Map an mmpretrain ResNet state dict onto torchvision's ResNet.

    The parameter names already coincide (``conv1``, ``bn1``, ``layer{i}.{j}.conv{k}`` / ``bn{k}``,
    ``downsample.0`` conv / ``downsample.1`` BN), so the mapping is a check: the key set and every shape must be
    exactly those of the torchvision model of the detected depth. ``head.fc.*`` (a linear classifier on the pooled
    features) becomes ``fc.*``.

    Returns:
        (state_dict, torchvision constructor name, number of classes or None when there is no classifier).
    """
    import torchvision
    counts = _block_counts(backbone)
    block = 'bottleneck' if 'layer1.0.conv3.weight' in backbone else 'basic'
    arch = next((name for name, spec in TORCHVISION_RESNETS.items() if spec == (block, counts)), None)
    if 'conv1.weight' not in backbone:
        stem = 'a deep stem (ResNetV1c/V1d, deep_stem=True)' if any(k.startswith('stem.') for k in backbone) \
            else 'no conv1 stem'
        raise ExportError(f'Checkpoint {path}: the backbone has {stem}, which torchvision ResNet cannot express; '
                          'use --format mmpretrain')
    if any(re.search(r'\.downsample\.2\.', k) for k in backbone):
        raise ExportError(f'Checkpoint {path}: the backbone down-samples with avg_down=True (AvgPool, conv, BN), '
                          'which torchvision ResNet cannot express; use --format mmpretrain')
    if arch is None:
        raise ExportError(f'Checkpoint {path}: a ResNet with {block} blocks {counts} per stage is not one of '
                          f'torchvision\'s {", ".join(TORCHVISION_RESNETS)}; use --format mmpretrain')
    with torch.device('meta'):  # shapes only: no memory, no random initialisation
        reference = getattr(torchvision.models, arch)().state_dict()
    reference.pop('fc.weight')
    reference.pop('fc.bias')
    missing = [k for k in reference if k not in backbone]
    extra = [k for k in backbone if k not in reference]
    if missing or extra:
        raise ExportError(f'Checkpoint {path}: the backbone keys differ from torchvision {arch}\'s (missing: '
                          f'{missing[:5]}, unexpected: {extra[:5]}); use --format mmpretrain')
    for key, ref in reference.items():
        if tuple(backbone[key].shape) != tuple(ref.shape):
            raise ExportError(
                f'Checkpoint {path}: {key} has shape {tuple(backbone[key].shape)}, torchvision {arch} needs '
                f'{tuple(ref.shape)} (a reduced width, another stem such as ResNet_CIFAR, or other widths cannot '
                'be expressed by torchvision); use --format mmpretrain')
    backbone_cfg = model_cfg.get('backbone') if model_cfg is not None else None
    if backbone_cfg is not None:
        _check_torchvision_config(backbone_cfg, block, path)
        depth = backbone_cfg.get('depth')
        if depth is not None and depth != _DEPTH[arch]:
            raise ExportError(f'Checkpoint {path}: its config says depth={depth} but the weights are those of a '
                              f'{arch}; the checkpoint and its config disagree')
    else:
        print(f'note: {path} stores no config; assuming mmpretrain\'s defaults (style="pytorch": stride in the 3x3 '
              'conv, no dilation, default strides), which cannot be read from the weights. Pass --config to check '
              'them.', file=sys.stderr)

    out = OrderedDict((k, backbone[k]) for k in reference)

    num_classes = None
    if head:
        if set(head) != {'fc.weight', 'fc.bias'}:
            raise ExportError(f'Checkpoint {path}: the head ({", ".join(head)}) is not a single linear layer '
                              '(head.fc.weight, head.fc.bias), so it has no torchvision fc equivalent')
        neck_type = str(((model_cfg or {}).get('neck') or {}).get('type', 'GlobalAveragePooling')).split('.')[-1]
        if neck_type != 'GlobalAveragePooling':
            raise ExportError(f'Checkpoint {path}: the classifier\'s neck is {neck_type!r}, not global average '
                              'pooling, so head.fc does not act on torchvision\'s pooled features')
        in_features = backbone['layer4.0.bn2.weight' if block == 'basic' else 'layer4.0.bn3.weight'].numel()
        if head['fc.weight'].dim() != 2 or head['fc.weight'].shape[1] != in_features:
            raise ExportError(f'Checkpoint {path}: head.fc.weight has shape {tuple(head["fc.weight"].shape)}, '
                              f'expected (num_classes, {in_features})')
        out['fc.weight'] = head['fc.weight']
        out['fc.bias'] = head['fc.bias']
        num_classes = head['fc.weight'].shape[0]
    return out, arch, num_classes


def input_normalisation(state: Dict[str, torch.Tensor], model_cfg) -> Optional[dict]:
    """Mean/std (0-255 scale) and channel order the backbone was trained with, from the checkpoint or config."""
    pre = (model_cfg or {}).get('data_preprocessor') or {}
    mean, std = state.get('data_preprocessor.mean'), state.get('data_preprocessor.std')
    mean = mean.flatten().tolist() if mean is not None else pre.get('mean')
    std = std.flatten().tolist() if std is not None else pre.get('std')
    if mean is None or std is None:
        return None
    order = ('RGB' if pre.get('to_rgb') or pre.get('bgr_to_rgb') else 'BGR') if pre else 'unknown'
    return dict(mean=[float(v) for v in mean], std=[float(v) for v in std], channel_order=order)


def export_backbone(checkpoint: str, out: str, fmt: str = 'mmpretrain', config: Optional[str] = None) -> dict:
    """Write the backbone of ``checkpoint`` to ``out`` in format ``fmt``; returns a summary (also printed)."""
    from mmsimclr.utils.atomic_file import atomic_write_bytes
    state, meta = read_checkpoint(checkpoint)
    if osp.exists(out) and osp.samefile(checkpoint, out):
        raise ExportError(f'OUT {out} is the input checkpoint {checkpoint} itself, which would be replaced; choose '
                          'another output path')
    backbone, head = split_state(state, checkpoint)
    model_cfg = stored_model_config(meta, config, checkpoint)
    summary = dict(checkpoint=checkpoint, out=out, format=fmt, num_tensors=None, arch=None, num_classes=None,
                   normalisation=input_normalisation(state, model_cfg))
    if fmt == 'mmpretrain':
        payload = {'state_dict': backbone,
                   'meta': {'exported_from': osp.basename(checkpoint), 'exported_by': 'mmsimclr export_backbone'}}
        summary['num_tensors'] = len(backbone)
    elif fmt == 'torchvision':
        payload, arch, num_classes = to_torchvision(backbone, head, model_cfg, checkpoint)
        summary.update(num_tensors=len(payload), arch=arch, num_classes=num_classes)
    else:
        raise ExportError(f'Unknown --format {fmt!r}; use "mmpretrain" or "torchvision"')
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(out, buffer.getvalue())
    _print_summary(summary)
    return summary


def _print_summary(s: dict) -> None:
    print(f'wrote {s["out"]}: {s["num_tensors"]} tensors, {s["format"]} format')
    if s['format'] == 'mmpretrain':
        print(f"  use: backbone=dict(..., init_cfg=dict(type='Pretrained', checkpoint='{s['out']}'))")
    elif s['num_classes'] is None:
        print(f'  use: m = torchvision.models.{s["arch"]}(); m.fc = torch.nn.Identity(); '
              f'm.load_state_dict(torch.load("{s["out"]}"))   # m(x): pooled features')
        print(f'   or: m = torchvision.models.{s["arch"]}(); m.load_state_dict(torch.load("{s["out"]}"), strict=False)'
              '   # fc.weight/fc.bias stay random')
    else:
        print(f'  use: m = torchvision.models.{s["arch"]}(num_classes={s["num_classes"]}); '
              f'm.load_state_dict(torch.load("{s["out"]}"))')
    norm = s['normalisation']
    if norm:
        mean = ', '.join(f'{v:.4g}' for v in norm['mean'])
        std = ', '.join(f'{v:.4g}' for v in norm['std'])
        print(f'  inputs: {norm["channel_order"]}, 0-255 scale mean ({mean}) std ({std}); for [0, 1] inputs '
              'divide both by 255')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('checkpoint', help='SimCLR or linear-classifier checkpoint (.pth) with backbone.* weights')
    p.add_argument('out', help='file to write (.pth)')
    p.add_argument('--format', default='mmpretrain', choices=['mmpretrain', 'torchvision'],
                   help='mmpretrain/mmdet/mmseg Pretrained file (default), or a torchvision resnet state dict')
    p.add_argument('--config', help='the model config, when the checkpoint does not store one (meta["cfg"]); '
                                    'used to check the torchvision conversion')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    return export_backbone(args.checkpoint, args.out, args.format, args.config)


if __name__ == '__main__':
    from mmsimclr.utils.checkpoint import CorruptCheckpointError, UnsafeCheckpointError
    try:
        main()
    except (ExportError, FileNotFoundError, UnsafeCheckpointError, CorruptCheckpointError) as e:
        sys.exit(f'error: {e}')
