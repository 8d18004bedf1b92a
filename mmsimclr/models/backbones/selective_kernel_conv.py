"""The selective-kernel 3x3 convolution of SimCLRv2's ResNets (SK-Net, Li et al. 2019, in SimCLRv2's variant).

SimCLRv2 (google-research/simclr ``resnet.py``, ``sk_conv2d``; ``tf2/resnet.py``, ``SK_Conv2D``) replaces the 3x3
convolution of every bottleneck with two 3x3 streams mixed by a per-channel softmax. Both streams are plain 3x3
convolutions (no dilated or 5x5 second kernel): they are computed by *one* convolution with twice the output
channels whose result is split in two halves. With ``C`` = ``out_channels``, ``s`` = stride::

    u = ReLU(BN(conv3x3_s(x)))                   # (N, 2C, H', W'); u0 = u[:, :C], u1 = u[:, C:]
    z = ReLU(BN(W1 * mean_hw(u0 + u1)))           # (N, M, 1, 1),  M = max(int(C * sk_ratio), min_channels)
    a = W2 * z                                     # (N, 2C, 1, 1); a0 = a[:, :C], a1 = a[:, C:]
    y = softmax(a0, a1)[0] * u0 + softmax(a0, a1)[1] * u1     # (N, C, H', W')

``W1``, ``W2`` are bias-free 1x1 convolutions; no BN or ReLU follows the mixing (the bottleneck's ``conv3`` takes
``y`` as is). The 3x3 convolution pads 1 on every side (TF: ``conv2d_fixed_padding``, explicit (1, 1) padding when
strided, ``'SAME'`` = (1, 1) when not), as PyTorch's ``padding=1``.

TF variables of one SK convolution, in creation order (TF1: ``tf.layers`` names, numbered per model under
``base_model/``, ``k``/``j`` = the running conv / BN counters; TF2 ``SK_Conv2D`` attribute in brackets), and the
module here with its PyTorch shape (TF kernels are ``(kh, kw, in, out)``: permute ``(3, 2, 0, 1)``):

1. ``conv2d_k/kernel`` (``conv2d_fixed_padding``) -> ``conv.weight`` ``(2C, Cin, 3, 3)``;
2. ``batch_normalization_j/*`` (``batch_norm_relu``) -> ``bn`` ``(2C, )``;
3. ``conv2d_{k+1}/kernel`` (``conv2d_0``) -> ``fc1.weight`` ``(M, C, 1, 1)``;
4. ``batch_normalization_{j+1}/*`` (``batch_norm_relu_1``) -> ``fc1_bn`` ``(M, )``;
5. ``conv2d_{k+2}/kernel`` (``conv2d_1``) -> ``fc2.weight`` ``(2C, M, 1, 1)``.

BN: TF ``gamma``/``beta``/``moving_mean``/``moving_variance`` = ``weight``/``bias``/``running_mean``/``running_var``.
"""
from typing import Optional

import torch
from mmcv.cnn import build_norm_layer
from torch import nn

from mmsimclr.registry import MODELS


@MODELS.register_module()
class SelectiveKernelConv2d(nn.Module):
    """Two-stream selective-kernel 3x3 convolution as in SimCLRv2 (see the module docstring for the formula).

    Args:
        in_channels (int): input channels ``Cin``.
        out_channels (int): output channels ``C`` (each stream has ``C``; the stacked convolution ``2C``).
        stride (int): stride of the 3x3 convolution. Defaults to 1.
        sk_ratio (float): reduction of the attention MLP's hidden size, ``M = max(int(C * sk_ratio),
            min_channels)``. Defaults to 0.0625 (SimCLRv2's ``--sk_ratio``).
        min_channels (int): lower bound of ``M`` (TF's ``min_dim``). Defaults to 32.
        norm_cfg (dict): normalisation of the streams and of the attention MLP's hidden layer. Defaults to BN.
        conv_cfg: unused placeholder for API symmetry (plain ``nn.Conv2d`` is built). Defaults to None.

    Shapes: ``(N, Cin, H, W)`` -> ``(N, C, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 sk_ratio: float = 0.0625,
                 min_channels: int = 32,
                 norm_cfg: dict = dict(type='BN'),
                 conv_cfg: Optional[dict] = None):
        super().__init__()
        if sk_ratio <= 0:
            raise ValueError(f'SelectiveKernelConv2d: sk_ratio must be > 0, got {sk_ratio}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.sk_ratio = sk_ratio
        self.min_channels = min_channels
        self.mid_channels = max(int(out_channels * sk_ratio), min_channels)
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn = build_norm_layer(norm_cfg, 2 * out_channels)[1]
        self.fc1 = nn.Conv2d(out_channels, self.mid_channels, 1, bias=False)
        self.fc1_bn = build_norm_layer(norm_cfg, self.mid_channels)[1]
        self.fc2 = nn.Conv2d(self.mid_channels, 2 * out_channels, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        streams = self.relu(self.bn(self.conv(x)))
        n, _, h, w = streams.shape
        streams = streams.view(n, 2, self.out_channels, h, w)  # [:, 0] = first half of the channels
        pooled = streams.sum(dim=1).mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
        logits = self.fc2(self.relu(self.fc1_bn(self.fc1(pooled))))  # (N, 2C, 1, 1)
        attention = logits.view(n, 2, self.out_channels, 1, 1).softmax(dim=1)
        return (streams * attention).sum(dim=1)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, out_channels={self.out_channels}, stride={self.stride}, '
                f'sk_ratio={self.sk_ratio}, mid_channels={self.mid_channels}')
