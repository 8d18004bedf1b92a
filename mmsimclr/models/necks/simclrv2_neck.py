"""SimCLRv2's projection head (google-research/simclr ``model_util.py``, ``projection_head``, ``nonlinear`` mode).

``num_layers`` (TF ``--num_proj_layers``, SimCLRv2: 3) linear layers under the TF scope ``head_contrastive``:

- ``nl_j`` for ``j < L - 1``: ``fc{j}`` (``hid -> hid``, no bias) - ``bn{j}`` (gamma and beta) - ReLU;
- ``nl_{L-1}``: ``fc{L-1}`` (``hid -> out_channels``, no bias) - ``bn{L-1}`` with gamma but *no beta*
  (TF ``center=False``) - no ReLU.

TF's dense layers have no bias (``linear_layer`` drops it when a BN follows); ``hid_channels`` defaults to
``in_channels`` (TF: ``mid_dim = hiddens.shape[-1]``, 2048 x width); ``out_channels`` is ``--proj_out_dim`` (128).
TF variables (TF1 names, expected from ``tf.layers`` scoping) -> modules (dense kernels are ``(in, out)``:
transpose): ``head_contrastive/nl_j/dense/kernel`` -> ``fc{j}.weight``, ``head_contrastive/nl_j/batch_normalization/
{gamma, beta, moving_mean, moving_variance}`` -> ``bn{j}.{weight, bias, running_mean, running_var}``.

The names and, but for the last BN's bias, the layout are those of :class:`NonLinearNeck` with ``with_bias=False``,
``with_last_bias=False``, ``with_last_bn=True``; that neck cannot drop the last BN's beta nor return an inner layer.

``out_layer`` (TF ``--ft_proj_selector``) picks the output from ``[h, nl_0(h), nl_1(...), ...]``: ``-1`` (or ``L``)
the last layer (pre-training), ``1`` the first layer's ReLU output (SimCLRv2's fine-tuning), ``0`` the backbone
features. Layers after ``out_layer`` are kept (so checkpoints load) but not run: their parameters get no gradient.

Input: a 1-tuple holding ``(N, C, H, W)`` (averaged over ``H, W`` when ``with_avg_pool``) or ``(N, C)``.
Output: a 1-tuple holding ``(N, out_channels)`` (``(N, hid_channels)`` for ``0 < out_layer < L``, ``(N, C)`` for 0).
"""
from typing import List, Optional, Tuple, Union

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import nn

from mmsimclr.registry import MODELS


@MODELS.register_module()
class SimCLRv2Neck(BaseModule):
    """SimCLRv2's projection head: bias-free linear layers, each with BN (the last without beta), ReLU between.

    Args:
        in_channels (int): backbone feature size ``C``, the input width of ``fc0`` (checked in ``forward``; for a
            4-D input without ``with_avg_pool``, ``C * H * W``).
        out_channels (int): projection size, the width of the last layer (TF ``--proj_out_dim``). Defaults to 128.
        hid_channels (int, optional): hidden size, the width of every layer but the last. Defaults to
            ``in_channels`` (TF: ``mid_dim``, 2048 x width).
        num_layers (int): linear layers ``L`` (>= 1; TF ``--num_proj_layers``). Defaults to 3 (SimCLRv2).
        out_layer (int): which output to return, in ``[-L - 1, L]``, taken modulo ``L + 1``: ``0`` the backbone
            features, ``j`` in ``[1, L)`` the ReLU output of layer ``j - 1``, ``-1`` or ``L`` the last layer (see
            the module docstring; TF ``--ft_proj_selector``). Defaults to -1 (the last, for pre-training).
        with_avg_pool (bool): global-average-pool a 4-D ``(N, C, H, W)`` input over ``H, W`` first; without it,
            a 4-D input is flattened. Defaults to True.
        norm_cfg (dict): config of every BN layer (``build_norm_layer``); the last one has its ``bias`` removed.
            Defaults to ``dict(type='GlobalBN')``: statistics over the batch of all ranks, as the paper's global BN.
        init_cfg (dict or list[dict], optional): mmengine initialisation. Defaults to the weights of
            ``_BatchNorm`` and ``GroupNorm`` layers set to 1 (and their biases to 0); the linear layers keep
            PyTorch's default initialisation.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 128,
                 hid_channels: Optional[int] = None,
                 num_layers: int = 3,
                 out_layer: int = -1,
                 with_avg_pool: bool = True,
                 norm_cfg: dict = dict(type='GlobalBN'),
                 init_cfg: Optional[Union[dict, List[dict]]] = [
                     dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
                 ]) -> None:
        super().__init__(init_cfg)
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f'SimCLRv2Neck: num_layers must be an int >= 1, got {num_layers!r}')
        if not -num_layers - 1 <= out_layer <= num_layers:
            raise ValueError(f'SimCLRv2Neck: out_layer must be in [{-num_layers - 1}, {num_layers}], got {out_layer}')
        self.in_channels = in_channels
        self.hid_channels = hid_channels = in_channels if hid_channels is None else hid_channels
        self.num_layers = num_layers
        self.out_layer = out_layer % (num_layers + 1)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1)) if with_avg_pool else None
        self.relu = nn.ReLU(inplace=True)
        for j in range(num_layers):
            last = j == num_layers - 1
            dim_in = in_channels if j == 0 else hid_channels
            dim_out = out_channels if last else hid_channels
            self.add_module(f'fc{j}', nn.Linear(dim_in, dim_out, bias=False))
            bn = build_norm_layer(norm_cfg, dim_out)[1]
            if last:  # TF: scale but no center
                bn.register_parameter('bias', None)
            self.add_module(f'bn{j}', bn)

    def forward(self, x: Tuple[torch.Tensor]) -> Tuple[torch.Tensor]:
        if len(x) != 1:
            raise ValueError(f'SimCLRv2Neck takes the last backbone stage only (a 1-tuple), got {len(x)} tensors')
        x = x[0]
        if self.avgpool is not None and x.dim() == 4:
            x = self.avgpool(x)
        x = x.flatten(1)
        if x.shape[1] != self.in_channels:
            raise ValueError(f'SimCLRv2Neck: in_channels={self.in_channels} but the input has {x.shape[1]}')
        for j in range(self.out_layer):
            x = getattr(self, f'bn{j}')(getattr(self, f'fc{j}')(x))
            if j < self.num_layers - 1:
                x = self.relu(x)
        return (x, )
