"""Contrastive head: turns the projections ``z`` of all views into the SimCLR loss."""
from typing import List, Optional, Union

import torch
from mmengine.model import BaseModule

from mmsimclr.registry import MODELS

# mmpretrain's SimCLR config writes the loss as a cross-entropy over [positive, negatives] logits; that is NT-Xent.
_NT_XENT_ALIASES = ('CrossEntropyLoss', 'mmpretrain.CrossEntropyLoss', 'NTXentLoss', 'mmsimclr.NTXentLoss')


@MODELS.register_module()
class ContrastiveHead(BaseModule):
    """Head computing NT-Xent over ``V`` views (constructor arguments as mmpretrain's ``ContrastiveHead``).

    Args:
        loss (dict): the loss config. ``dict(type='NTXentLoss')`` (default); mmpretrain's
            ``dict(type='CrossEntropyLoss')`` is accepted and means the same objective.
        temperature (float): NT-Xent temperature (> 0). Defaults to 0.1.
        init_cfg (dict | list[dict], optional): initialisation config.
    """

    def __init__(self,
                 loss: dict = dict(type='NTXentLoss'),
                 temperature: float = 0.1,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        loss = dict(loss)
        if loss.get('type') in _NT_XENT_ALIASES:
            extra = {k: v for k, v in loss.items() if k not in ('type', 'loss_weight', 'temperature',
                                                                  'gather_distributed', 'use_sigmoid')}
            if extra:
                raise ValueError(f'ContrastiveHead: loss options {sorted(extra)} are not supported by NT-Xent')
            loss = dict(type='mmsimclr.NTXentLoss', loss_weight=loss.get('loss_weight', 1.0),
                        temperature=loss.get('temperature', temperature),
                        gather_distributed=loss.get('gather_distributed', True))
        else:
            loss.setdefault('temperature', temperature)
        self.temperature = temperature
        self.loss_module = MODELS.build(loss)

    def loss(self, z: torch.Tensor, num_views: int = 2) -> torch.Tensor:
        """``z``: ``(n * num_views, d)`` projections, sample-major. Returns the scalar loss."""
        return self.loss_module(z, num_views=num_views)
