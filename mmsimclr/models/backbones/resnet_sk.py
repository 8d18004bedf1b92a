"""SimCLRv2's ResNets (Chen et al. 2020, "Big Self-Supervised Models are Strong Semi-Supervised Learners").

The architecture of google-research/simclr's TF1 ``resnet.py`` (v2 era; ``tf2/resnet.py`` builds the same network)
with ``--resnet_depth`` in {50, 101, 152}, ``--width_multiplier`` in {1, 2, 3} and ``--sk_ratio`` in {0, 0.0625}.
See :mod:`mmsimclr.models.backbones.simclrv2_arch` for the 13 published models.
"""
import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmpretrain.models.backbones.resnet import Bottleneck, ResLayer
from torch import nn
from torch.overrides import TorchFunctionMode

from mmsimclr.registry import MODELS
from .resnet_tf_stem import ResNetTFStem
from .selective_kernel_conv import SelectiveKernelConv2d


class _LinspaceOnCPU(TorchFunctionMode):
    """Runs ``torch.linspace`` on the CPU when no device is given: mmpretrain's ``ResNet`` reads its drop-path rates
    with ``linspace(...).item()``, which fails under a ``torch.device('meta')`` default; every other tensor still
    goes to the default device, so the backbone can be built on ``meta`` (no memory) and counted or loaded."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.linspace and kwargs.get('device') is None:
            kwargs['device'] = 'cpu'
        return func(*args, **kwargs)


class ResNetDShortcutPool(nn.Module):
    """The 2x2 average pool in front of a SimCLRv2 (sk > 0) projection shortcut, with TF's padding.

    TF (``resnet.py``, ``bottleneck_block``, ``sk_ratio > 0``) pools *every* projection shortcut, not only strided ones:

    - ``stride > 1``: ``fixed_padding(x, 2)`` (zeros, 0 before / 1 after) then ``average_pooling2d(2, stride,
      'VALID')``. On an even side the pad is never read (= PyTorch ``AvgPool2d(2, 2)``); on an odd side the last
      window holds a zero row/column and is still divided by 4.
    - ``stride == 1`` (the first block of ``block_group1``): ``average_pooling2d(2, 1, 'SAME')``: each output is
      the mean of ``x[i:i + 2, j:j + 2]`` clipped to the map (TF's SAME pooling pads 0 before / 1 after and leaves
      the pad out of the mean). mmpretrain's ``ResNetV1d`` has no pool here.

    No parameters. Shapes: ``(N, C, H, W)`` -> ``(N, C, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            # windows starting at -1 .. H-1 with the pad left out of the count; keep those starting at 0 .. H-1
            return F.avg_pool2d(x, 2, 1, padding=1, count_include_pad=False)[..., 1:, 1:]
        return F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, self.stride)

    def extra_repr(self) -> str:
        return f'kernel_size=2, stride={self.stride}, padding=TF ({"SAME" if self.stride == 1 else "fixed, VALID"})'


class SKBottleneck(Bottleneck):
    """mmpretrain's ``Bottleneck`` (stride in the 3x3, ``style='pytorch'``) with the 3x3 convolution and its BN + ReLU
    replaced by :class:`SelectiveKernelConv2d` (``conv2``; which holds its own BNs): ``conv1-bn1-relu``,
    ``conv2`` (SK), ``conv3-bn3``, ``+ shortcut``, ``relu``. There is no ``norm2``.

    Extra args: ``sk_ratio`` (float), ``sk_min_channels`` (int), as in :class:`SelectiveKernelConv2d`.
    """

    def __init__(self, in_channels, out_channels, sk_ratio=0.0625, sk_min_channels=32, **kwargs):
        super().__init__(in_channels, out_channels, **kwargs)
        if self.style != 'pytorch' or self.dilation != 1:
            raise ValueError("SKBottleneck: only style='pytorch' and dilation=1 (SimCLRv2's block)")
        self.conv2 = SelectiveKernelConv2d(self.mid_channels, self.mid_channels, stride=self.conv2_stride,
                                           sk_ratio=sk_ratio, min_channels=sk_min_channels, norm_cfg=self.norm_cfg)
        delattr(self, self.norm2_name)
        self.norm2_name = None

    @property
    def norm2(self):
        return None

    def forward(self, x):

        def _inner_forward(x):
            out = self.relu(self.norm1(self.conv1(x)))
            out = self.conv2(out)
            out = self.norm3(self.conv3(out))
            identity = x if self.downsample is None else self.downsample(x)
            return self.drop_path(out) + identity

        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(_inner_forward, x, use_reentrant=False)
        else:
            out = _inner_forward(x)
        return self.relu(out)


@MODELS.register_module()
class ResNetSK(ResNetTFStem):
    """SimCLRv2's ResNet: ResNet v1 (``sk_ratio=0``) or ResNet-D with selective-kernel 3x3 convolutions
    (``sk_ratio > 0``), every width times ``width_multiplier``, TF's SAME stem max pool.

    Args:
        depth (int): 50, 101, 152 (or 200; 18 / 34 only with ``sk_ratio=0``).
        width_multiplier (int): channel multiplier of every layer, stem included. Defaults to 1.
        sk_ratio (float): 0 for the plain model; > 0 (SimCLRv2: 0.0625) for SK convolutions, the three-conv stem
            and average-pool shortcuts. Defaults to 0.0625.
        sk_min_channels (int): lower bound of the SK attention MLP's width. Defaults to 32.
        **kwargs: the other arguments of mmpretrain's ``ResNet`` (``out_indices``, ``frozen_stages``, ``norm_cfg``,
            ``norm_eval``, ``with_cp``, ``zero_init_residual``, ``init_cfg``, ``drop_path_rate``, ``in_channels``,
            ``conv_cfg``). The architectural ones are set here and refused.

    Shapes (``w`` = ``width_multiplier``, input ``(N, 3, H, W)``, ``H, W`` even down to /32 as at 224):
    stem ``(N, 64w, H/4, W/4)`` after the max pool; ``layer1..4`` ``(N, 256w, H/4, W/4)``, ``(N, 512w, H/8, W/8)``,
    ``(N, 1024w, H/16, W/16)``, ``(N, 2048w, H/32, W/32)`` (``feat_dim`` = 2048w); odd sizes round up as TF does.

    Layout against TF's ``resnet_v1_generator`` / ``bottleneck_block`` (BN eps 1e-5 everywhere):

    - stem, ``sk_ratio=0``: ``conv1`` 7x7/2 (64w) - ``bn1`` - ReLU - max pool 3x3/2 SAME;
      ``sk_ratio > 0``: ``stem.0`` 3x3/2 (32w), ``stem.1`` 3x3 (32w), ``stem.2`` 3x3 (64w), each ``.conv`` + ``.bn``
      + ReLU (mmpretrain's deep stem with ``stem_channels`` = 64w), then the SAME max pool.
    - stages ``layer{1..4}`` (TF ``block_group{1..4}``), bottleneck widths ``64w * 2**i``, outputs 4x that; the
      first block of each stage has the projection shortcut ``downsample``: ``sk_ratio=0``: ``downsample.0`` 1x1
      conv with the stride, ``downsample.1`` BN; ``sk_ratio > 0``: ``downsample.0`` :class:`ResNetDShortcutPool`
      (also at stride 1), ``downsample.1`` 1x1 conv (stride 1), ``downsample.2`` BN.
    - block: ``conv1`` 1x1 - ``bn1`` - ReLU - 3x3 (``conv2``-``bn2``-ReLU, or the SK ``conv2``) - ``conv3`` 1x1 -
      ``bn3`` (TF initialises its gamma to 0: ``zero_init_residual``) - add - ReLU.

    TF1 checkpoints name the variables by creation order under ``base_model/`` (``conv2d``, ``conv2d_1``, ...,
    ``batch_normalization``, ...); :meth:`tf_creation_order` lists this model's modules in that order.
    """

    def __init__(self, depth: int, width_multiplier: int = 1, sk_ratio: float = 0.0625, sk_min_channels: int = 32,
                 **kwargs):
        fixed = {'stem_channels', 'base_channels', 'expansion', 'num_stages', 'strides', 'dilations', 'style',
                 'deep_stem', 'avg_down'}
        if fixed & kwargs.keys():
            raise ValueError(f'ResNetSK sets {sorted(fixed & kwargs.keys())} itself (from depth, width_multiplier, '
                             'sk_ratio)')
        if int(width_multiplier) != width_multiplier or width_multiplier < 1:
            raise ValueError(f'ResNetSK: width_multiplier must be a positive integer, got {width_multiplier!r}')
        if sk_ratio < 0:
            raise ValueError(f'ResNetSK: sk_ratio must be >= 0, got {sk_ratio}')
        if sk_ratio > 0 and depth in (18, 34):
            raise ValueError(f'ResNetSK: sk_ratio > 0 needs a bottleneck ResNet (50, 101, 152, 200), got {depth}')
        self.width_multiplier = int(width_multiplier)
        self.sk_ratio = float(sk_ratio)
        self.sk_min_channels = sk_min_channels
        width = 64 * self.width_multiplier
        # ResNetTFStem refuses deep_stem (v1); the SK model's deep stem is allowed here via _make_stem_layer.
        self._sk_deep_stem = self.sk_ratio > 0
        with _LinspaceOnCPU():
            super().__init__(depth=depth, stem_channels=width, base_channels=width, style='pytorch', **kwargs)

    def _make_stem_layer(self, in_channels, stem_channels):
        self.deep_stem = self._sk_deep_stem
        super()._make_stem_layer(in_channels, stem_channels)

    def make_res_layer(self, **kwargs):
        if self.sk_ratio == 0:
            return ResLayer(**kwargs)
        kwargs.pop('avg_down')
        kwargs.pop('dilation')
        block, num_blocks, stride = kwargs.pop('block'), kwargs.pop('num_blocks'), kwargs.pop('stride')
        in_channels, out_channels = kwargs.pop('in_channels'), kwargs.pop('out_channels')
        conv_cfg, norm_cfg, dpr = kwargs['conv_cfg'], kwargs['norm_cfg'], kwargs.pop('drop_path_rate')
        if block is not Bottleneck:
            raise ValueError('ResNetSK: SK blocks replace bottlenecks only')
        downsample = nn.Sequential(
            ResNetDShortcutPool(stride),
            build_conv_layer(conv_cfg, in_channels, out_channels, kernel_size=1, bias=False),
            build_norm_layer(norm_cfg, out_channels)[1])
        blocks = []
        for i in range(num_blocks):
            blocks.append(SKBottleneck(in_channels if i == 0 else out_channels, out_channels,
                                       stride=stride if i == 0 else 1, downsample=downsample if i == 0 else None,
                                       sk_ratio=self.sk_ratio, sk_min_channels=self.sk_min_channels,
                                       drop_path_rate=dpr[i], **kwargs))
        return nn.Sequential(*blocks)

    def tf_creation_order(self):
        """``(convs, bns)``: this model's convolution and BN module names in the order TF1 ``resnet.py`` creates
        them, i.e. the i-th entry of ``convs`` holds ``base_model/conv2d_i/kernel`` (``conv2d`` for i = 0) and the
        i-th of ``bns`` ``base_model/batch_normalization_i/*``. Per block: the projection shortcut (conv, BN) first,
        then ``conv1``/``bn1``, the 3x3 (SK: ``conv``, ``bn``, ``fc1``, ``fc1_bn``, ``fc2``), ``conv3``/``bn3``."""
        convs, bns = [], []
        if self.deep_stem:
            for i in range(3):
                convs.append(f'stem.{i}.conv')
                bns.append(f'stem.{i}.bn')
        else:
            convs.append('conv1')
            bns.append(self.norm1_name)
        for layer_name in self.res_layers:
            for j, block in enumerate(getattr(self, layer_name)):
                prefix = f'{layer_name}.{j}'
                if block.downsample is not None:
                    names = [n for n, m in block.downsample.named_children() if any(True for _ in m.parameters())]
                    convs.append(f'{prefix}.downsample.{names[0]}')
                    bns.append(f'{prefix}.downsample.{names[1]}')
                convs.append(f'{prefix}.conv1')
                bns.append(f'{prefix}.{block.norm1_name}')
                if isinstance(block.conv2, SelectiveKernelConv2d):
                    convs += [f'{prefix}.conv2.conv', f'{prefix}.conv2.fc1', f'{prefix}.conv2.fc2']
                    bns += [f'{prefix}.conv2.bn', f'{prefix}.conv2.fc1_bn']
                else:
                    convs.append(f'{prefix}.conv2')
                    bns.append(f'{prefix}.{block.norm2_name}')
                convs.append(f'{prefix}.conv3')
                bns.append(f'{prefix}.{block.norm3_name}')
        return convs, bns


__all__ = ['ResNetSK', 'SKBottleneck', 'ResNetDShortcutPool']
