"""Max pooling with TensorFlow's ``padding='SAME'`` rule."""
import math

import torch
import torch.nn.functional as F
from torch import nn


class TFSameMaxPool2d(nn.Module):
    """``tf.nn.max_pool2d(..., padding='SAME')`` in PyTorch.

    TensorFlow's SAME padding depends on the input size: output ``ceil(n / stride)``, total padding
    ``max((out - 1) * stride + kernel - n, 0)``, split ``total // 2`` before and the rest after. For the ResNet stem
    (3x3, stride 2) that is 1 / 1 on an odd side (as ``nn.MaxPool2d(3, 2, 1)``) but 0 / 1 on an even side, where
    PyTorch's symmetric padding would pool a grid shifted by one pixel. Padding is ``-inf`` (never selected).

    Args:
        kernel_size: pooling window (square).
        stride: pooling stride.

    Shapes: ``(N, C, H, W)`` -> ``(N, C, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, kernel_size: int = 3, stride: int = 2):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def _pads(self, size: int):
        total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel_size - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._pads(x.shape[-2])
        left, right = self._pads(x.shape[-1])
        x = F.pad(x, (left, right, top, bottom), value=float('-inf'))
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f'kernel_size={self.kernel_size}, stride={self.stride}, padding=SAME'
