"""SimCLR (Chen et al., ICML 2020): f(.) backbone, g(.) projection neck, NT-Xent over augmented views."""
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.optim import OptimWrapper
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
    - ``'projection'``: ``inputs`` is one ``(rows, 3, H, W)`` tensor of images (any views); returns their
      projections ``z = g(f(x))``, ``(rows, d)``. What the grad-cache step runs on each chunk.
    - ``'tensor'``: backbone feature maps (a tuple, as mmpretrain's backbones return).
    - ``'predict'``: one ``DataSample`` per image with ``feat`` (globally pooled backbone embedding ``h``, the
      representation the paper evaluates) and ``proj`` (the projection ``z = g(h)``). This is what val/test loops
      and feature extraction use (mmpretrain's self-supervised models raise ``Invalid mode "predict"``).

    Args:
        backbone, neck, head, data_preprocessor, init_cfg (dict): as mmpretrain's ``BaseSelfSupervisor``, so
            mmpretrain's SimCLR configs and checkpoints work unchanged. ``neck``, ``head`` and ``data_preprocessor``
            configs are built in the ``mmsimclr`` scope whatever the default scope (none, ``'mmpretrain'`` or
            ``'mmsimclr'``), so ``type='NonLinearNeck'`` / ``'ContrastiveHead'`` are mmsimclr's; the backbone is
            built in the caller's scope, as mmpretrain does. ``head`` must accept ``loss(z, num_views=V)``
            (mmsimclr's ``ContrastiveHead`` does; mmpretrain's is refused with an explanation).
        channels_last (bool): keep weights and activations in ``torch.channels_last`` (NHWC) memory format, which
            convolutions run faster in on tensor cores and with oneDNN; values are unchanged. Defaults to False.
        grad_cache (dict, optional): train with gradient caching (Gao et al., 2021, "Scaling Deep Contrastive
            Learning Batch Size under Memory Limited Setup"): the exact NT-Xent gradient of a large batch with the
            activation memory of ``chunk_size`` rows. Keys: ``chunk_size`` (int, rows = images x views run through
            backbone + neck at a time on each rank) and ``split_views`` (bool, default False: put the views of an
            image in different chunks). See :meth:`grad_cache_train_step`. Defaults to None (the plain step).

    Gradient accumulation (``optim_wrapper.accumulative_counts > 1``) is refused by :meth:`train_step`: mmengine
    computes the loss of every sub-batch on its own, so each anchor sees a fraction of the negatives and the
    objective is not the large batch's; ``grad_cache`` is the exact way to a batch that does not fit in memory.
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 *args,
                 data_preprocessor: Optional[Union[dict, torch.nn.Module]] = None,
                 channels_last: bool = False,
                 grad_cache: Optional[dict] = None,
                 **kwargs) -> None:
        grad_cache = _check_grad_cache(grad_cache)  # before building anything: fail fast
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
        self.grad_cache = grad_cache
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
        if mode == 'projection':
            return self.project(inputs)
        raise RuntimeError(f'SimCLR.forward: invalid mode "{mode}"; use "loss", "tensor", "predict" or "projection"')

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
        z = self.project(x)  # (n * V, d)
        return dict(loss=self.head.loss(z, num_views=num_views))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Projections ``z = g(f(x))`` ``(rows, d)`` of images ``x`` ``(rows, 3, H, W)`` (training-mode BN: the
        statistics of these rows)."""
        return self.neck(self.backbone(self._memory_format(x)))[0]

    # ------------------------------------------------------------------------------------------------ train step
    def train_step(self, data: Union[dict, tuple, list], optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        """mmengine's training step (preprocess, forward, loss, backward, optimizer step), or the grad-cache step
        when ``grad_cache`` is set. Refuses gradient accumulation (see the class docstring)."""
        self.check_optim_wrapper(optim_wrapper)
        if self.grad_cache is not None:
            return self.grad_cache_train_step(data, optim_wrapper)
        return super().train_step(data, optim_wrapper)

    @staticmethod
    def check_optim_wrapper(optim_wrapper) -> None:
        """Refuse gradient accumulation (``accumulative_counts > 1``) with a ``ValueError`` naming ``grad_cache``."""
        check_no_accumulation(optim_wrapper)

    def grad_cache_train_step(self, data: Union[dict, tuple, list], optim_wrapper: OptimWrapper,
                              model: Optional[torch.nn.Module] = None) -> Dict[str, torch.Tensor]:
        """One optimizer step on the whole (per-rank) batch, ``chunk_size`` rows at a time (gradient caching).

        ``model`` is what runs the forward passes that build gradients: this model (the default) or the DDP
        wrapper around it (:class:`~mmsimclr.engine.SimCLRDistributedDataParallel` passes itself, so that
        gradients are all-reduced). With ``V`` views of ``n`` images on this rank there are ``m = n V`` rows
        (sample-major: row ``i`` is view ``i % V`` of image ``i // V``), split into ``K`` chunks of at most
        ``chunk_size`` rows; ``z`` is ``(m, d)``.

        1. Pass 1, without autograd: ``z_k = g(f(x_k))`` for every chunk ``k`` (BN in training mode with the
           chunk's statistics; the model's buffers -- BN running statistics, ``num_batches_tracked`` -- are
           restored afterwards, so they are updated in pass 2 only), assembled into ``z`` in row order. The RNG
           state before each chunk is recorded.
        2. ``L = head.loss(z, V)`` on a detached leaf ``z``, backward: ``G = dL/dz`` ``(m, d)``. Under DDP the
           head gathers the negatives of all ranks, as in the plain step, so ``G`` includes every rank's loss.
           The loss goes through ``optim_wrapper.backward`` (AMP loss scaling is in ``G``).
        3. Pass 2, chunk by chunk with autograd, the RNG state of pass 1 restored: ``z_k = g(f(x_k))`` again and
           ``z_k.backward(G_k)``, which accumulates ``(dz_k/dtheta)^T G_k`` into the parameter gradients and
           frees the chunk's activations. Under DDP every chunk but the last runs in ``no_sync()``: gradients
           are all-reduced once, with the last chunk's backward.
        4. ``optim_wrapper.step()`` and ``zero_grad()``.

        Why it is exact: the loss depends on the parameters only through ``z``, and ``z = (z_1, ..., z_K)`` with
        ``z_k`` a function of chunk ``k`` alone, so ``dL/dtheta = sum_k (dz_k/dtheta)^T dL/dz_k`` (chain rule).
        Pass 1 computes each ``z_k`` as pass 2 does (same rows, same BN batch statistics, same random numbers),
        so ``G`` is the gradient at the very ``z`` pass 2 differentiates, and the sum is what pass 2 accumulates.
        The result is the gradient of K processes each holding one chunk with per-process BN (each rank with
        the negatives of all), on any number of ranks; BN running statistics are updated once per chunk, in
        chunk order. Plain (per-chunk) BN statistics are the only difference from a forward of the whole batch
        at once. ``split_views=True`` puts view ``v`` of image group ``(k + v) mod K`` in chunk ``k``, so the
        two views of an image never share BN statistics (the leak that global BN closes); the loss still pairs
        the right rows.

        Memory: one chunk's activations at a time plus ``z`` and ``G`` (``2 m d``) and the loss. Time: one
        more forward of the batch (about 4/3 of the plain step when backward costs two forwards).

        Returns the log variables of the plain step (``{'loss': ...}``). mmengine's ``detect_anomalous_params``
        is not run (the loss has no parameters in its graph).
        """
        model = self if model is None else model
        chunk_size, split_views = self.grad_cache['chunk_size'], self.grad_cache['split_views']
        with optim_wrapper.optim_context(model):
            data = self.data_preprocessor(data, True)
        views = data['inputs']
        if not isinstance(views, (list, tuple)) or len(views) < 2:
            self.loss(views)  # raises the explanation
        num_views, num_images = len(views), views[0].shape[0]
        chunks = grad_cache_chunks(num_images, num_views, chunk_size, split_views)
        device = views[0].device
        rows = [torch.cat([idx * num_views + v for v, idx in enumerate(chunk)]).to(device) for chunk in chunks]

        def chunk_input(chunk):  # (rows of the chunk, 3, H, W), view-grouped like ``rows``
            return torch.cat([views[v].index_select(0, idx.to(device)) for v, idx in enumerate(chunk) if len(idx)])

        # pass 1: projections without autograd; buffers restored, RNG states recorded
        buffers = list(self.buffers())
        saved_buffers = [b.clone() for b in buffers]
        rng_states, parts = [], []
        with torch.no_grad(), optim_wrapper.optim_context(model):
            for chunk in chunks:
                rng_states.append(_get_rng_state(device))
                parts.append(self.project(chunk_input(chunk)))
        with torch.no_grad():
            for b, saved in zip(buffers, saved_buffers):
                b.copy_(saved)
        del saved_buffers
        z_chunks = torch.cat(parts)
        del parts
        z = z_chunks.new_empty(z_chunks.shape).index_copy_(0, torch.cat(rows), z_chunks).requires_grad_()
        del z_chunks

        # the loss on the whole batch and its gradient with respect to z
        with optim_wrapper.optim_context(model):
            losses = dict(loss=self.head.loss(z, num_views=num_views))
        parsed_loss, log_vars = self.parse_losses(losses)
        optim_wrapper.backward(optim_wrapper.scale_loss(parsed_loss))  # z.grad = dL/dz (x any AMP loss scale)
        grad_z, z = z.grad, None

        # pass 2: per chunk, forward with autograd and backward of dL/dz_k; DDP all-reduces after the last chunk
        no_sync = getattr(model, 'no_sync', None)
        for k, chunk in enumerate(chunks):
            last = k == len(chunks) - 1
            with (no_sync() if no_sync is not None and not last else nullcontext()):
                _set_rng_state(rng_states[k], device)
                with optim_wrapper.optim_context(model):
                    z_k = model(chunk_input(chunk), mode='projection')
                z_k.backward(grad_z.index_select(0, rows[k]))
            del z_k
        if optim_wrapper.should_update():
            optim_wrapper.step()
            optim_wrapper.zero_grad()
        return log_vars


def _check_grad_cache(grad_cache: Optional[dict]) -> Optional[dict]:
    """The ``grad_cache`` option with its defaults filled in, or None; a clear error for a wrong one."""
    if grad_cache is None:
        return None
    if not isinstance(grad_cache, dict):
        raise TypeError(f'SimCLR: grad_cache must be a dict such as dict(chunk_size=256) or None, got {grad_cache!r}')
    unknown = set(grad_cache) - {'chunk_size', 'split_views'}
    if unknown:
        raise ValueError(f'SimCLR: unknown grad_cache keys {sorted(unknown)}; the keys are chunk_size, split_views')
    chunk_size = grad_cache.get('chunk_size')
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f'SimCLR: grad_cache.chunk_size must be a positive int (rows = images x views per '
                         f'chunk, per rank), got {chunk_size!r}')
    return dict(chunk_size=chunk_size, split_views=bool(grad_cache.get('split_views', False)))


def grad_cache_chunks(num_images: int, num_views: int, chunk_size: int,
                      split_views: bool = False) -> List[List[torch.Tensor]]:
    """The chunks of the grad-cache step: for each chunk, for each view ``v``, the (CPU, int64) indices of the
    images whose view ``v`` it holds.

    - ``split_views=False``: consecutive runs of ``chunk_size`` rows of the sample-major batch (as ranks hold
      their slices of a batch): both views of an image in one chunk, unless a chunk boundary falls between them.
    Within a chunk, rows run view by view (view 0 of its images, then view 1, ...).
    - ``split_views=True``: images in ``K`` groups of ``chunk_size // V`` (the last may be smaller); chunk ``k``
      holds view ``v`` of group ``(k + v) mod K``, so no chunk holds two views of one image. Needs ``K >= V``.
    """
    m = num_images * num_views
    if not split_views:
        out = []
        for start in range(0, m, chunk_size):
            r = torch.arange(start, min(start + chunk_size, m))
            out.append([r[r % num_views == v] // num_views for v in range(num_views)])
        return out
    per_group = max(1, chunk_size // num_views)
    groups = torch.arange(num_images).split(per_group)
    if len(groups) < num_views:
        raise ValueError(f'SimCLR grad_cache split_views: {num_images} images x {num_views} views in chunks of '
                         f'{chunk_size} rows make {len(groups)} chunk(s); the views of an image need {num_views} '
                         f'different chunks: lower grad_cache.chunk_size to at most {m // num_views} rows')
    return [[groups[(k + v) % len(groups)] for v in range(num_views)] for k in range(len(groups))]


def check_no_accumulation(optim_wrapper) -> None:
    """Refuse mmengine's gradient accumulation for SimCLR (see the ``SimCLR`` docstring)."""
    wrappers = getattr(optim_wrapper, 'optim_wrappers', None)
    for wrapper in (wrappers.values() if isinstance(wrappers, dict) else [optim_wrapper]):
        counts = getattr(wrapper, '_accumulative_counts', 1)
        if counts > 1:
            raise ValueError(
                f'SimCLR: optim_wrapper accumulative_counts={counts} is refused. mmengine\'s gradient accumulation '
                f'computes NT-Xent on each of the {counts} sub-batches on its own, so every anchor sees 1/{counts} of '
                'the negatives: the objective is not the large batch\'s. For an exact large batch with the memory of '
                'a small one, drop accumulative_counts, set the full batch size per step and '
                'model.grad_cache=dict(chunk_size=<rows per chunk, images x views>) (gradient caching)')


def _get_rng_state(device: torch.device) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    cuda = torch.cuda.get_rng_state(device) if device.type == 'cuda' else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: Tuple[torch.Tensor, Optional[torch.Tensor]], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)
