"""Contrastive head with two call contracts: SimCLR's multi-view NT-Xent and mmpretrain's ``(pos, neg)`` logits.

- ``loss(z, num_views=V)``: ``z`` is ``(n * V, d)`` projections, sample-major (row ``i`` is view ``i % V`` of image
  ``i // V``). Returns NT-Xent (:class:`~mmsimclr.models.losses.NTXentLoss`: cosine similarities / temperature,
  negatives gathered from every rank). This is what mmsimclr's ``SimCLR`` calls.
- ``loss(pos, neg)``: mmpretrain's contract, used by its MoCo, DenseCL and SimCLR: ``pos`` ``(N, 1)`` and ``neg``
  ``(N, k)`` similarities; the loss is ``loss_module(cat(pos, neg) / temperature, 0)``, i.e. a cross-entropy whose
  target is the positive column. Same numbers as mmpretrain's ``ContrastiveHead``.

The two agree: NT-Xent is exactly that cross-entropy over each anchor's ``[positive, negatives]`` cosine logits,
which is why mmpretrain's SimCLR config spells it ``loss=dict(type='CrossEntropyLoss')``. So the head accepts

- ``loss=dict(type='NTXentLoss', ...)`` (mmsimclr's configs): multi-view contract only;
- ``loss=dict(type='CrossEntropyLoss')`` (mmpretrain's configs): both contracts; the ``(pos, neg)`` one uses
  mmpretrain's loss as configured, the multi-view one an ``NTXentLoss`` with the head's temperature and the
  loss's ``loss_weight`` (only a plain cross-entropy is NT-Xent, so options such as ``label_smooth`` or
  ``use_sigmoid`` leave just the ``(pos, neg)`` contract);
- any other loss: built as configured, used by the ``(pos, neg)`` contract (mmpretrain's behaviour).

No parameters or buffers: the state dict is empty, as mmpretrain's.
"""
from typing import List, Optional, Union

import torch
from mmengine.model import BaseModule
from mmengine.registry import DefaultScope

from mmsimclr.models.losses import NTXentLoss
from mmsimclr.registry import MODELS

_NT_XENT_TYPES = ('NTXentLoss', 'mmsimclr.NTXentLoss')
_CROSS_ENTROPY_TYPES = ('CrossEntropyLoss', 'mmpretrain.CrossEntropyLoss')
# mmpretrain's CrossEntropyLoss options and the values for which it is the plain softmax cross-entropy
_PLAIN_CROSS_ENTROPY = dict(use_sigmoid=False, use_soft=False, reduction='mean', class_weight=None, pos_weight=None)


@MODELS.register_module()
class ContrastiveHead(BaseModule):
    """Head computing a contrastive loss (constructor arguments as mmpretrain's ``ContrastiveHead``).

    Args:
        loss (dict): the loss config; see the module docstring. Defaults to ``dict(type='NTXentLoss')``.
        temperature (float): the temperature ``tau`` (> 0) dividing the similarities. Defaults to 0.1.
        init_cfg (dict | list[dict], optional): initialisation config.
    """

    def __init__(self,
                 loss: dict = dict(type='NTXentLoss'),
                 temperature: float = 0.1,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(f'ContrastiveHead: temperature must be a number > 0, got {temperature!r}')
        if not isinstance(loss, dict) or 'type' not in loss:
            raise TypeError(f'ContrastiveHead: loss must be a config dict with a "type", e.g. '
                            f"dict(type='NTXentLoss') or dict(type='CrossEntropyLoss'), got {loss!r}")
        self.temperature = temperature
        loss = dict(loss)
        self.multiview_loss: Optional[NTXentLoss] = None  # used by loss(z, num_views=V)
        self._no_multiview_reason = ''
        if loss['type'] in _NT_XENT_TYPES:
            loss.setdefault('temperature', temperature)
        # in the mmsimclr scope whatever the caller's: 'NTXentLoss' resolves, and so do mmpretrain's names
        with DefaultScope.overwrite_default_scope('mmsimclr'):
            self.loss_module = MODELS.build(loss)  # the (pos, neg) contract uses it as mmpretrain does
        if loss['type'] in _NT_XENT_TYPES:
            self.multiview_loss = self.loss_module
        elif loss['type'] in _CROSS_ENTROPY_TYPES:
            not_plain = {k: loss[k] for k, v in _PLAIN_CROSS_ENTROPY.items() if k in loss and loss[k] != v}
            if not_plain:
                self._no_multiview_reason = f'a CrossEntropyLoss with {not_plain} is not NT-Xent'
            else:
                self.multiview_loss = NTXentLoss(temperature=temperature, loss_weight=loss.get('loss_weight', 1.0))
        else:
            self._no_multiview_reason = f'loss type {loss["type"]!r} is not NT-Xent'

    def loss(self, x: torch.Tensor, neg: Optional[torch.Tensor] = None,
             num_views: Optional[int] = None) -> torch.Tensor:
        """Scalar loss, by either contract.

        Args:
            x: ``z`` ``(n * V, d)`` projections (multi-view contract), or ``pos`` ``(N, 1)`` positive similarities
                (mmpretrain's contract, with ``neg``).
            neg: ``(N, k)`` negative similarities; given = mmpretrain's contract.
            num_views: ``V`` for the multi-view contract. Defaults to 2.
        """
        if neg is None:
            return self._multiview(x, 2 if num_views is None else num_views)
        if num_views is not None:
            raise TypeError('ContrastiveHead.loss: pass either (pos, neg) similarities or (z, num_views=V) '
                            'projections, not both')
        return self._pos_neg(x, neg)

    def _multiview(self, z: torch.Tensor, num_views: int) -> torch.Tensor:
        if self.multiview_loss is None:
            raise ValueError(f'ContrastiveHead.loss(z, num_views=V) computes NT-Xent, but {self._no_multiview_reason}; '
                             "use loss=dict(type='NTXentLoss') or a plain dict(type='CrossEntropyLoss')")
        if not torch.is_tensor(z) or z.dim() != 2:
            raise ValueError('ContrastiveHead.loss(z, num_views=V) expects (n * V, d) projections, got '
                             f'{tuple(z.shape) if torch.is_tensor(z) else type(z).__name__}; for mmpretrain\'s '
                             'contract pass (pos (N, 1), neg (N, k)) similarities')
        return self.multiview_loss(z, num_views=num_views)

    def _pos_neg(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        if pos.dim() != 2 or neg.dim() != 2 or pos.shape[0] != neg.shape[0]:
            raise ValueError(f'ContrastiveHead.loss(pos, neg) expects pos (N, 1) and neg (N, k) similarities, got '
                             f'{tuple(pos.shape)} and {tuple(neg.shape)}')
        if isinstance(self.loss_module, NTXentLoss):
            raise ValueError('ContrastiveHead.loss(pos, neg) scores given similarities with a classification loss, '
                             'but this head was built with loss=NTXentLoss, which takes projections '
                             "(loss(z, num_views=V)); for MoCo/DenseCL use loss=dict(type='CrossEntropyLoss') as "
                             "mmpretrain's configs do")
        logits = torch.cat((pos, neg), dim=1) / self.temperature  # (N, 1 + k); column 0 is the positive
        labels = torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
        return self.loss_module(logits, labels)
