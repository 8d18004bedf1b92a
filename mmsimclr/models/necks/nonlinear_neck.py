"""SimCLR's projection head g(.) (paper Sec. 2.1): an MLP on the pooled backbone features.

Structure ``fc-bn-[relu-fc-bn]`` with ``num_layers`` linear layers: ``fc0`` maps ``in_channels -> hid_channels``,
middle layers ``hid -> hid``, the last ``hid -> out_channels``. Module names (``fc0``, ``bn0``, ``fc1``, ``bn1``...)
and constructor arguments are those of mmpretrain's ``NonLinearNeck`` so that checkpoints load unchanged.

Input: a 1-tuple holding ``(N, C, H, W)`` (pooled here when ``with_avg_pool``) or ``(N, C)``.
Output: a 1-tuple holding ``(N, out_channels)``.
"""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from mmsimclr.registry import MODELS


@MODELS.register_module()
class NonLinearNeck(BaseModule):
    """Args:
        in_channels, hid_channels, out_channels (int): feature sizes.
        num_layers (int): number of linear layers (>= 1). Defaults to 2 (the paper's 2048-2048-128 head).
        with_bias (bool): bias in all but the last linear layer. Defaults to False (a BN follows).
        with_last_bn (bool): BN after the last linear layer. Defaults to True.
        with_last_bn_affine (bool): learnable affine in that last BN. Defaults to True.
        with_last_bias (bool): bias in the last linear layer. Defaults to False.
        with_avg_pool (bool): global-average-pool a 4-D input first. Defaults to True.
        norm_cfg (dict): normalisation layer. Defaults to ``GlobalBN`` (global batch statistics under DDP).
        init_cfg: defaults to BN weights = 1.
    """

    def __init__(self,
                 in_channels: int,
                 hid_channels: int,
                 out_channels: int,
                 num_layers: int = 2,
                 with_bias: bool = False,
                 with_last_bn: bool = True,
                 with_last_bn_affine: bool = True,
                 with_last_bias: bool = False,
                 with_avg_pool: bool = True,
                 norm_cfg: dict = dict(type='GlobalBN'),
                 init_cfg: Optional[Union[dict, List[dict]]] = [
                     dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
                 ]) -> None:
        super().__init__(init_cfg)
        if num_layers < 1:
            raise ValueError(f'NonLinearNeck: num_layers must be >= 1, got {num_layers}')
        self.in_channels = in_channels
        self.with_avg_pool = with_avg_pool
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1)) if with_avg_pool else None
        self.relu = nn.ReLU(inplace=True)
        self.fc_names: List[str] = []
        self.bn_names: List[Optional[str]] = []
        for i in range(num_layers):
            last = i == num_layers - 1
            c_in = in_channels if i == 0 else hid_channels
            c_out = out_channels if last else hid_channels
            self.add_module(f'fc{i}', nn.Linear(c_in, c_out, bias=with_last_bias if last else with_bias))
            self.fc_names.append(f'fc{i}')
            if last and not with_last_bn:
                self.bn_names.append(None)
                continue
            cfg = dict(norm_cfg, affine=with_last_bn_affine) if last else dict(norm_cfg)
            self.add_module(f'bn{i}', build_norm_layer(cfg, c_out)[1])
            self.bn_names.append(f'bn{i}')

    def forward(self, x: Tuple[torch.Tensor]) -> Tuple[torch.Tensor]:
        if len(x) != 1:
            raise ValueError(f'NonLinearNeck takes the last backbone stage only (a 1-tuple), got {len(x)} tensors; '
                             'set backbone.out_indices=(3, )')
        x = x[0]
        if self.avgpool is not None and x.dim() == 4:
            x = self.avgpool(x)
        x = x.flatten(1)
        if x.shape[1] != self.in_channels:
            raise ValueError(f'NonLinearNeck: in_channels={self.in_channels} but the backbone gives {x.shape[1]} '
                             'channels; set model.neck.in_channels to match (2048 for ResNet-50, 512 for ResNet-18)')
        for i, (fc_name, bn_name) in enumerate(zip(self.fc_names, self.bn_names)):
            if i > 0:
                x = self.relu(x)
            x = getattr(self, fc_name)(x)
            if bn_name is not None:
                x = getattr(self, bn_name)(x)
        return (x, )
