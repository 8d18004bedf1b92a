"""SimCLRv2's published TensorFlow checkpoints (google-research/simclr, ``gs://simclr-checkpoints/simclrv2/``) as
mmsimclr models. Shared machinery (reading, creation-order mapping, the sha256 record, ``convert_file``) is in
:mod:`mmsimclr.apis.simclr_tf`; ``convert_file`` and ``tools/model_converters/simclr_tf_to_mmsimclr.py`` send
SimCLRv2 checkpoints here on their own (a 3x3 stem, i.e. selective kernels, or a ``head_contrastive/`` scope).

What a checkpoint holds (TF1 ``tf.layers`` names, created in the order of ``resnet.py`` / ``model_util.py``):

- ``base_model/``: the ResNet. Without selective kernels (``sk0``) it is SimCLR v1's layout (see
  :mod:`~mmsimclr.apis.simclr_tf`). With them (``sk1``, ``--sk_ratio=0.0625``): three stem convolutions
  (``stem.{0,1,2}.conv``/``.bn``), then per block: the ResNet-D projection shortcut in the first block of a group
  (its average pool has no variables: ``downsample.1`` conv, ``downsample.2`` BN), ``conv1``/``bn1``, the
  selective-kernel 3x3 (``conv2.conv``, ``conv2.bn``, ``conv2.fc1``, ``conv2.fc1_bn``, ``conv2.fc2``), ``conv3``/
  ``bn3``: :func:`resnet_sk_layers`, identical to :meth:`ResNetSK.tf_creation_order
  <mmsimclr.models.backbones.ResNetSK.tf_creation_order>`. Depth (50/101/152: 87/172/257 convolutions with SK,
  53/104/155 without), width (the third stem convolution's 64 x width channels) and SK are read from the
  checkpoint; every tensor's shape is checked against the architecture, including the SK attention width
  ``max(int(C * 0.0625), 32)``.
- ``head_contrastive/nl_{0,1,2}/``: ``dense/kernel`` (no bias) and ``batch_normalization/*`` (``nl_2`` has no
  ``beta``) -> ``neck.fc{j}.weight``, ``neck.bn{j}.*`` of :class:`~mmsimclr.models.necks.SimCLRv2Neck`.
- ``head_supervised/linear_layer/dense/{kernel,bias}`` -> ``head.fc.*``. In the *pretrained* set it is the linear
  classifier trained alongside pretraining on the pooled backbone features (README: "with linear eval head"). In a
  *fine-tuned* set it sits on ``hiddens_list[ft_proj_selector]``: nl_0's ReLU output for the 1% and 10% sets and
  the pooled features for the 100% set (the paper: "we fine-tune from the first layer of the projection head for
  1%/10% of labeled examples, but from the input of the projection head when 100% labels are present"; quoted in
  google-research/simclr issue #109). Both are 2048 x width wide, so the shapes cannot tell; the model config does
  (``SimCLRv2Neck(out_layer=1)`` or ``0``); the state dict is the same.
- training state, ignored: ``global_step``, optimizer slots (``.../Momentum``), and a second copy of the network,
  ``ema_model/base_model/...`` and ``ema_model/head_contrastive/...`` (the "doubled" layers), with the memory
  buffer's variables.

Which copy: ``base_model/`` (with ``head_contrastive/`` and ``head_supervised/``), not ``ema_model/``. The
``ema_model/`` scope is SimCLRv2's MoCo-style momentum encoder (the paper: a memory network whose weights are a
moving average, decay 0.999, whose outputs fill the 64K negative buffer); it only encodes keys for the buffer. The
published numbers come from the online network: (1) the authors' fine-tuning (``run.py``/``model.py``) builds
``base_model/``, ``head_contrastive/``, ``head_supervised/`` and restores exactly those names from the checkpoint
(``init_from_checkpoint`` over its own graph's variables), so every F-T (1/10/100%) row started from
``base_model/``; (2) the TF-Hub modules (``build_hub_module``: ``base_model`` scope) and the TF2 SavedModels made
from them, whose ``imagenet_results`` colab reproduces the README's linear-eval and fine-tuning columns within 0.1,
are that copy; (3) ``head_supervised/`` exists once and was trained (stop-gradient) on the online encoder's
features, so only ``base_model/`` matches it; (4) the authors' own colab counts parameters excluding ``ema``,
``memory`` and ``head``. ``ema=True`` converts the ``ema_model/`` copy instead (backbone and projection head; the
one ``head_supervised`` is kept, so its logits are a mismatch by (3)).

TF-Hub module folders (``<set>/<model>/hub/``: ``variables/variables.*``) hold the same names (the module is built
in the same ``base_model`` scope and exported from the checkpoint), without optimizer slots or the EMA copy, and
only the head(s) the module's graph used; they convert the same way.

Result: ``{'state_dict', 'meta'}`` with ``backbone.*`` (:class:`~mmsimclr.models.backbones.ResNetSK` keys),
``neck.*`` (when the checkpoint has ``head_contrastive``) and ``head.fc.*`` (when it has ``head_supervised``):
it loads with ``strict=True`` into the ``configs/simclrv2/*_simclrv2-{pre,finetune-*}_*`` classifiers.

Model zoo: entries with ``Converter: simclrv2_tf`` (registered by :mod:`~mmsimclr.apis.simclr_tf`) publish the
``.index`` URL of a checkpoint; :func:`fetch_converted` downloads it and its ``.data-00000-of-00001`` (through
``$MMSIMCLR_MIRROR``, with a progress bar, atomically), converts them once into
``<cache>/simclrv2_<set>_<model>_mmsimclr.pth``, records that file's sha256 (checked before every later use) and
deletes the downloads.
"""
import os.path as osp
import shutil
import urllib.parse
import urllib.request
from typing import Dict, List, Tuple

import torch

from mmsimclr.models.backbones.simclrv2_arch import SK_RATIO
from mmsimclr.utils.tf_checkpoint import TFCheckpoint, TFCheckpointError
from .download import _stream_to, cache_dir, is_url, mirror_location
from .simclr_tf import (BASE_SCOPE, STAGE_BLOCKS, _layers_by_index, bn_state, check_shapes, convert_file,
                        convert_once, convert_v1_backbone, dense_weight, linear_head_state, map_layers)

PROJ_SCOPE = 'head_contrastive/'
EMA_PREFIX = 'ema_model/'
SK_MIN_CHANNELS = 32
#: training steps of the published checkpoints (``model.ckpt-<step>``), per set: 800 / 60 / 30 / 30 epochs of
#: ImageNet's 1281167 images, its 1% and its 10% subset at batch 4096 / 1024 / 1024 / 1024
STEPS = {'pretrained': 250228, 'finetuned_1pct': 751, 'finetuned_10pct': 3754, 'finetuned_100pct': 37535}
BUCKET = 'https://storage.googleapis.com/simclr-checkpoints/simclrv2'
DATA_SUFFIX = '.data-00000-of-00001'


def checkpoint_url(subset: str, model: str) -> str:
    """The ``.index`` URL of a published checkpoint: ``subset`` one of :data:`STEPS`, ``model`` e.g. ``r50_1x_sk1``."""
    return f'{BUCKET}/{subset}/{model}/model.ckpt-{STEPS[subset]}.index'


def resnet_sk_layers(stage_blocks) -> Tuple[List[str], List[str]]:
    """Conv and BN module names of :class:`ResNetSK` (``sk_ratio > 0``) in TF's creation order."""
    convs = [f'stem.{i}.conv' for i in range(3)]
    bns = [f'stem.{i}.bn' for i in range(3)]
    for stage, blocks in enumerate(stage_blocks, start=1):
        for block in range(blocks):
            p = f'layer{stage}.{block}.'
            if block == 0:
                convs.append(p + 'downsample.1')
                bns.append(p + 'downsample.2')
            convs += [p + 'conv1', p + 'conv2.conv', p + 'conv2.fc1', p + 'conv2.fc2', p + 'conv3']
            bns += [p + 'bn1', p + 'conv2.bn', p + 'conv2.fc1_bn', p + 'bn3']
    return convs, bns


def _sk_shapes(width: int, stage_blocks) -> Dict[str, tuple]:
    """Every conv weight / BN weight shape of ResNetSK at ``width`` (= 64 x multiplier) channels."""
    half = width // 2
    shapes = {'backbone.stem.0.conv.weight': (half, 3, 3, 3), 'backbone.stem.0.bn.weight': (half,),
              'backbone.stem.1.conv.weight': (half, half, 3, 3), 'backbone.stem.1.bn.weight': (half,),
              'backbone.stem.2.conv.weight': (width, half, 3, 3), 'backbone.stem.2.bn.weight': (width,)}
    in_ch = width
    for stage, blocks in enumerate(stage_blocks, start=1):
        c = width << (stage - 1)
        mid = max(int(c * SK_RATIO), SK_MIN_CHANNELS)
        for block in range(blocks):
            p = f'backbone.layer{stage}.{block}.'
            if block == 0:
                shapes[p + 'downsample.1.weight'] = (4 * c, in_ch, 1, 1)
                shapes[p + 'downsample.2.weight'] = (4 * c,)
            shapes.update({p + 'conv1.weight': (c, in_ch, 1, 1), p + 'bn1.weight': (c,),
                           p + 'conv2.conv.weight': (2 * c, c, 3, 3), p + 'conv2.bn.weight': (2 * c,),
                           p + 'conv2.fc1.weight': (mid, c, 1, 1), p + 'conv2.fc1_bn.weight': (mid,),
                           p + 'conv2.fc2.weight': (2 * c, mid, 1, 1),
                           p + 'conv3.weight': (4 * c, c, 1, 1), p + 'bn3.weight': (4 * c,)})
            in_ch = 4 * c
    return shapes


def convert_sk_backbone(ckpt: TFCheckpoint, scope: str = BASE_SCOPE) -> Tuple[Dict[str, torch.Tensor], dict]:
    """``backbone.*`` of a selective-kernel ResNet-D under ``scope`` and its architecture facts."""
    conv_scopes = _layers_by_index(ckpt, 'conv2d', scope)
    bn_scopes = _layers_by_index(ckpt, 'batch_normalization', scope)
    num_blocks, rest = divmod(len(conv_scopes) - 7, 5)  # 3 stem + 4 projections + 5 per block
    if rest or num_blocks not in STAGE_BLOCKS or len(bn_scopes) != 7 + 4 * num_blocks:
        raise TFCheckpointError(
            f'TensorFlow checkpoint {ckpt.prefix} has {len(conv_scopes)} convolutions and {len(bn_scopes)} batch '
            f'norms under {scope} and a 3x3 stem: not a SimCLRv2 selective-kernel ResNet-50/101/152 (expected '
            '87/172/257 convolutions)')
    depth, stage_blocks = STAGE_BLOCKS[num_blocks]
    width = ckpt.shape(conv_scopes[2] + '/kernel')[-1]
    convs, bns = resnet_sk_layers(stage_blocks)
    state = map_layers(ckpt, conv_scopes, bn_scopes, convs, bns)
    check_shapes(state, _sk_shapes(width, stage_blocks), ckpt.prefix)
    return state, dict(depth=depth, stem_channels=width, base_channels=width, width_multiplier=width / 64,
                       feat_dim=width * 32, sk_ratio=SK_RATIO)


def projection_head_state(ckpt: TFCheckpoint, scope: str, feat_dim: int) -> Tuple[Dict[str, torch.Tensor], dict]:
    """``neck.*`` of the nonlinear projection head under ``scope`` (``head_contrastive/nl_j``) and its sizes
    (``proj_layers``, ``proj_hidden``, ``proj_dim``; 0 / None when there is no head)."""
    num_layers = 0
    while f'{scope}nl_{num_layers}/dense/kernel' in ckpt:
        num_layers += 1
    if not num_layers:
        if any(n.startswith(scope) for n in ckpt.names()):
            raise TFCheckpointError(f'{ckpt.prefix}: {scope} has no nl_0/dense/kernel: not SimCLRv2\'s nonlinear '
                                    'projection head (--proj_head_mode=nonlinear)')
        return {}, dict(proj_layers=0, proj_hidden=None, proj_dim=None)
    state, dims = {}, [feat_dim]
    for j in range(num_layers):
        layer = f'{scope}nl_{j}/'
        kernel = dense_weight(ckpt, layer + 'dense/kernel')
        if kernel.shape[1] != dims[-1]:
            raise TFCheckpointError(f'{ckpt.prefix}: {layer}dense/kernel takes {kernel.shape[1]} inputs, but the '
                                    f'layer before gives {dims[-1]}')
        dims.append(kernel.shape[0])
        state[f'neck.fc{j}.weight'] = kernel
        last = j == num_layers - 1
        if (layer + 'batch_normalization/beta' in ckpt) == last:
            raise TFCheckpointError(f'{ckpt.prefix}: {layer}batch_normalization {"has" if last else "lacks"} a beta; '
                                    'SimCLRv2\'s head has one on every layer but the last')
        state.update(bn_state(ckpt, layer + 'batch_normalization', f'neck.bn{j}'))
    return state, dict(proj_layers=num_layers, proj_hidden=dims[1], proj_dim=dims[-1])


def _uses_sk(ckpt: TFCheckpoint, scope: str) -> bool:
    name = scope + 'conv2d/kernel'
    return name in ckpt and tuple(ckpt.shape(name)[:2]) == (3, 3)


def is_simclrv2(ckpt: TFCheckpoint) -> bool:
    """A SimCLRv2 checkpoint: selective kernels (3x3 stem) or a ``head_contrastive/`` projection head."""
    return _uses_sk(ckpt, BASE_SCOPE) or any(n.startswith(PROJ_SCOPE) for n in ckpt.names())


def convert_simclrv2_tf(ckpt: TFCheckpoint, ema: bool = False) -> Tuple[Dict[str, torch.Tensor], dict]:
    """mmsimclr state dict and architecture facts of a SimCLRv2 TF checkpoint (any of the published sets).

    Args:
        ckpt: the checkpoint.
        ema: convert the ``ema_model/`` copy (the momentum encoder) instead of ``base_model/`` (see the module
            docstring for why the default is the one the published accuracies belong to).

    Returns:
        ``(state_dict, arch)``: ``backbone.*`` (+ ``neck.*``, ``head.fc.*`` when present); ``arch`` has ``depth``,
        ``width_multiplier``, ``stem_channels`` (= ``base_channels``), ``sk_ratio``, ``feat_dim``, ``proj_layers``,
        ``proj_hidden``, ``proj_dim``, ``num_classes``, ``layout`` (``'SimCLRv2'`` or ``'SimCLR v1'``), ``copy``
        (the scope converted) and ``ignored`` (the top-level scopes left out).

    Raises:
        TFCheckpointError: variables missing, counted or shaped unlike a SimCLR(v2) ResNet-50/101/152.
    """
    prefix = EMA_PREFIX if ema else ''
    scope = prefix + BASE_SCOPE
    if scope + 'conv2d/kernel' not in ckpt:
        raise TFCheckpointError(f'TensorFlow checkpoint {ckpt.prefix} has no {scope}conv2d/kernel'
                                + (': it holds no EMA copy of the network' if ema else ''))
    sk = _uses_sk(ckpt, scope)
    state, arch = convert_sk_backbone(ckpt, scope) if sk else convert_v1_backbone(ckpt, scope)
    arch.setdefault('sk_ratio', 0.0)
    neck, proj = projection_head_state(ckpt, prefix + PROJ_SCOPE, arch['feat_dim'])
    head, num_classes = linear_head_state(ckpt, arch['feat_dim'], proj['proj_hidden'] or arch['feat_dim'])
    state.update(neck)
    state.update(head)
    used = {scope.split('/')[0], 'head_supervised', 'global_step'} | ({'head_contrastive'} if not ema else set())
    ignored = sorted({n.split('/')[0] for n in ckpt.names()} - used)
    return state, dict(arch, **proj, num_classes=num_classes, layout='SimCLRv2' if sk or neck else 'SimCLR v1',
                       copy=scope.rstrip('/'), ignored=ignored)


def _download(url: str, dst: str, progress: bool) -> str:
    """``url`` as a local file: a folder mirror's copy in place, else downloaded to ``dst`` (through an http(s)
    ``$MMSIMCLR_MIRROR`` when set; atomically, with a progress bar). A complete ``dst`` from an interrupted
    conversion of the same checkpoint is reused."""
    location = mirror_location(url)
    if location.startswith('file://'):
        location = urllib.request.url2pathname(urllib.parse.urlparse(location).path)
    if not is_url(location):
        if not osp.isfile(location):
            raise FileNotFoundError(f'{location} (for {url}) does not exist; copy the published file there or '
                                    'unset $MMSIMCLR_MIRROR')
        return location
    if not osp.isfile(dst):
        _stream_to(location, url, dst, None, progress, timeout=60)
    return dst


def fetch_converted(url: str, progress: bool = True) -> str:
    """Zoo hook: the converted checkpoint for a published SimCLRv2 checkpoint (``url`` = its ``.index``),
    converted on first use (see the module docstring). A download that does not convert (a damaged file) is
    deleted with the error, so the next call fetches it afresh."""
    path = urllib.parse.urlparse(url).path
    if not path.endswith('.index'):
        raise ValueError(f'simclrv2_tf converter: expected the URL of a checkpoint\'s .index file, got {url}')
    parts = [p for p in path.split('/') if p]
    name = '_'.join(parts[-4:-1]) or 'simclrv2_tf'
    dst = osp.join(cache_dir(), f'{name}_mmsimclr.pth')
    stem = parts[-1][:-len('.index')]

    def produce():
        folder = osp.join(cache_dir(), f'{name}.download')
        index = _download(url, osp.join(folder, stem + '.index'), progress)
        data = _download(url[:-len('.index')] + DATA_SUFFIX, osp.join(folder, stem + DATA_SUFFIX), progress)
        if osp.dirname(index) != osp.dirname(data):
            raise FileNotFoundError(f'{index} and {data} must sit side by side')
        try:
            convert_file(index[:-len('.index')], dst)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # the downloads (a folder mirror's files are never here)

    return convert_once(url, dst, produce)


__all__ = ['convert_simclrv2_tf', 'convert_sk_backbone', 'projection_head_state', 'resnet_sk_layers', 'is_simclrv2',
           'fetch_converted', 'checkpoint_url', 'STEPS']
