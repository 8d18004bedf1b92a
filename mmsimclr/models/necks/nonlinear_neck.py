"""SimCLR's projection head g(.) (paper Sec. 2.1): an MLP on the pooled backbone features.

Structure ``fc0-bn0-[relu-fc-bn]*``, the layout of mmpretrain's ``NonLinearNeck`` for every argument set, so that
state dicts move between the two with ``strict=True`` and give the same outputs:

- ``fc0``: ``in_channels -> hid_channels`` (bias: ``with_bias``), then ``bn0`` (always; ``norm_cfg`` as given);
- ``fc1 .. fc{L-2}``: ``hid -> hid`` (bias: ``with_bias``), each followed by a ``bn``;
- ``fc{L-1}`` (only when ``num_layers = L >= 2``): ``hid -> out_channels`` (bias: ``with_last_bias``), followed by
  a ``bn`` only with ``with_last_bn`` (learnable affine only with ``with_last_bn_affine``).

So ``with_last_bn``, ``with_last_bn_affine``, ``with_last_bias`` and ``out_channels`` describe the last of at least
two layers; with ``num_layers=1`` the neck is ``fc0-bn0`` and outputs ``hid_channels`` features (as mmpretrain's).

Input: a 1-tuple holding ``(N, C, H, W)`` (averaged over ``H, W`` when ``with_avg_pool``) or ``(N, C)``.
Output: a 1-tuple holding ``(N, out_channels)`` (``(N, hid_channels)`` when ``num_layers == 1``).
"""
import warnings
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from mmsimclr.registry import MODELS


@MODELS.register_module()
class NonLinearNeck(BaseModule):
    """The projection head g(.) of SimCLR: ``num_layers`` linear layers with BN and ReLU between them (the module
    docstring gives the layout and the tensor shapes).

    Args:
        in_channels, hid_channels, out_channels (int): feature sizes.
        num_layers (int): number of linear layers (>= 1). Defaults to 2 (the paper's 2048-2048-128 head).
        with_bias (bool): bias in every linear layer but the last of two or more. Defaults to False (a BN follows).
        with_last_bn (bool): BN after the last linear layer (``num_layers >= 2``). Defaults to True.
        with_last_bn_affine (bool): learnable affine in that last BN. Defaults to True.
        with_last_bias (bool): bias in the last linear layer (``num_layers >= 2``). Defaults to False.
        with_avg_pool (bool): global-average-pool a 4-D input first. Defaults to True.
        norm_cfg (dict): normalisation layer. Defaults to ``GlobalBN`` (global batch statistics under DDP; the same
            state-dict keys as mmpretrain's default ``SyncBN``).
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
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f'NonLinearNeck: num_layers must be an int >= 1, got {num_layers!r}')
        if num_layers == 1 and out_channels != hid_channels:
            warnings.warn(f'NonLinearNeck(num_layers=1) is fc0-bn0 and outputs hid_channels={hid_channels} '
                          f'features (as mmpretrain\'s); out_channels={out_channels} is not used. Set '
                          'hid_channels to the size you want, or num_layers >= 2.')
        self.in_channels = in_channels
        self.with_avg_pool = with_avg_pool
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1)) if with_avg_pool else None
        self.relu = nn.ReLU(inplace=True)
        self.fc0 = nn.Linear(in_channels, hid_channels, bias=with_bias)
        self.bn0 = build_norm_layer(norm_cfg, hid_channels)[1]
        # the layers after the first, each a (linear, optional norm) pair, in order
        self.fc_names: List[str] = []
        self.bn_names: List[Optional[str]] = []
        for i in range(1, num_layers):
            last = i == num_layers - 1
            fc_name, bn_name = f'fc{i}', f'bn{i}'
            self.add_module(fc_name, nn.Linear(hid_channels, out_channels if last else hid_channels,
                                               bias=with_last_bias if last else with_bias))
            self.fc_names.append(fc_name)
            if last and not with_last_bn:
                self.bn_names.append(None)
                continue
            cfg = dict(norm_cfg, affine=with_last_bn_affine) if last else dict(norm_cfg)
            self.add_module(bn_name, build_norm_layer(cfg, out_channels if last else hid_channels)[1])
            self.bn_names.append(bn_name)

    def forward(self, x: Tuple[torch.Tensor]) -> Tuple[torch.Tensor]:
        """``(x, )`` -> ``(g(x), )``; see the module docstring for shapes."""
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
        x = self.bn0(self.fc0(x))
        for fc_name, bn_name in zip(self.fc_names, self.bn_names):
            x = getattr(self, fc_name)(self.relu(x))
            if bn_name is not None:
                x = getattr(self, bn_name)(x)
        return (x, )
