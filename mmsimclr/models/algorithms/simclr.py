"""SimCLR (Chen et al., ICML 2020): f(.) backbone, g(.) projection neck, NT-Xent over augmented views."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.registry import DefaultScope
from mmpretrain.models.heads import ContrastiveHead as MMPretrainContrastiveHead
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample

from mmsimclr.registry import MODELS


def _build_in_mmsimclr_scope(cfg: Optional[Union[dict, torch.nn.Module]]) -> Optional[torch.nn.Module]:
    """Build a config with ``mmsimclr`` as the default scope, whatever the caller's: names that mmsimclr and
    mmpretrain both register (``NonLinearNeck``, ``ContrastiveHead``) give mmsimclr's class, every other mmpretrain
    name still resolves (mmsimclr's registries are children of mmpretrain's), and an explicit ``scope.Type`` wins."""
    if cfg is None or isinstance(cfg, torch.nn.Module):
        return cfg
    with DefaultScope.overwrite_default_scope('mmsimclr'):
        return MODELS.build(cfg)


@MODELS.register_module()
class SimCLR(BaseSelfSupervisor):
    """SimCLR algorithm.

    Modes of ``forward``:

    - ``'loss'``: ``inputs`` is a list of ``V >= 2`` view batches, each ``(n, 3, H, W)``; returns ``{'loss': ...}``.
    - ``'tensor'``: backbone feature maps (a tuple, as mmpretrain's backbones return).
    - ``'predict'``: one ``DataSample`` per image with ``feat`` (globally pooled backbone embedding ``h``, the
      representation the paper evaluates) and ``proj`` (the projection ``z = g(h)``). This is what val/test loops
      and feature extraction use (mmpretrain's self-supervised models raise ``Invalid mode "predict"``).

    Args: as mmpretrain's ``BaseSelfSupervisor`` (``backbone``, ``neck``, ``head``, ``data_preprocessor``,
    ``init_cfg``), so mmpretrain's SimCLR configs and checkpoints work unchanged. ``neck``, ``head`` and
    ``data_preprocessor`` configs are built in the ``mmsimclr`` scope whatever the default scope (none,
    ``'mmpretrain'`` or ``'mmsimclr'``), so ``type='NonLinearNeck'`` / ``'ContrastiveHead'`` are mmsimclr's; the
    backbone is built in the caller's scope, as mmpretrain does. ``head`` must accept ``loss(z, num_views=V)``
    (mmsimclr's ``ContrastiveHead`` does; mmpretrain's is refused with an explanation). Plus
        channels_last (bool): keep weights and activations in ``torch.channels_last`` (NHWC) memory format, which
            convolutions run faster in on tensor cores and with oneDNN; values are unchanged. Defaults to False.
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 *args,
                 data_preprocessor: Optional[Union[dict, torch.nn.Module]] = None,
                 channels_last: bool = False,
                 **kwargs) -> None:
        # built in mmpretrain's order (data preprocessor, backbone, neck, head), so that a seed gives the same
        # initial weights as mmpretrain's SimCLR
        if data_preprocessor is None or isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor or {})
            data_preprocessor.setdefault('type', 'SelfSupDataPreprocessor')  # mmpretrain's default
        data_preprocessor = _build_in_mmsimclr_scope(data_preprocessor)
        if isinstance(backbone, dict):
            backbone = MMPRETRAIN_MODELS.build(backbone)  # the caller's scope, as mmpretrain
        neck, head = _build_in_mmsimclr_scope(neck), _build_in_mmsimclr_scope(head)
        if isinstance(head, MMPretrainContrastiveHead):
            raise TypeError("SimCLR: head is mmpretrain's ContrastiveHead, whose loss(pos, neg) cannot take SimCLR's "
                            "views; use type='ContrastiveHead' (built from mmsimclr whatever the default scope) or "
                            "'mmsimclr.ContrastiveHead', or mmpretrain.models.SimCLR for mmpretrain's parts")
        super().__init__(backbone, neck, head, *args, data_preprocessor=data_preprocessor, **kwargs)
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)  # 4-D weights; a conv's output follows its weight

    def _memory_format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def forward(self,
                inputs: Union[torch.Tensor, List[torch.Tensor]],
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_feat(self._single_view(inputs))
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'SimCLR.forward: invalid mode "{mode}"; use "loss", "tensor" or "predict"')

    @staticmethod
    def _single_view(inputs: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
        # the self-supervised data preprocessor hands over a list of views; evaluation uses the first
        if isinstance(inputs, (list, tuple)):
            return inputs[0]
        return inputs

    def extract_feat(self, inputs: torch.Tensor):
        """Backbone feature maps for ``(n, 3, H, W)`` images (tuple of tensors)."""
        return self.backbone(self._memory_format(inputs))

    def embed(self, inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``{'feat': (n, C) pooled backbone features h, 'proj': (n, d) projections z}``."""
        feats = self.extract_feat(self._single_view(inputs))
        last = feats[-1]
        h = last.mean(dim=(2, 3)) if last.dim() == 4 else last.flatten(1)
        out = {'feat': h}
        if self.with_neck:
            out['proj'] = self.neck((last, ))[0]
        return out

    def predict(self, inputs, data_samples: Optional[List[DataSample]] = None) -> List[DataSample]:
        out = self.embed(inputs)
        n = out['feat'].shape[0]
        if data_samples is None:
            data_samples = [DataSample() for _ in range(n)]
        for i, sample in enumerate(data_samples):
            sample.set_field(out['feat'][i], 'feat', field_type='metainfo')
            if 'proj' in out:
                sample.set_field(out['proj'][i], 'proj', field_type='metainfo')
        return data_samples

    def loss(self, inputs: List[torch.Tensor], data_samples: Optional[List[DataSample]] = None,
             **kwargs) -> Dict[str, torch.Tensor]:
        """NT-Xent over all views: ``inputs`` is a list of ``V`` tensors ``(n, 3, H, W)``."""
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ValueError('SimCLR.loss needs a list of at least two augmented views per image; wrap the view '
                             "pipeline in dict(type='MultiView', num_views=2, transforms=[view_pipeline]) "
                             'and use a SelfSupDataPreprocessor')
        num_views = len(inputs)
        x = torch.stack(list(inputs), dim=1).flatten(0, 1)  # (n * V, 3, H, W), sample-major
        z = self.neck(self.backbone(self._memory_format(x)))[0]  # (n * V, d)
        return dict(loss=self.head.loss(z, num_views=num_views))
