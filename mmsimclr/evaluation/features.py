"""Embedding images with a model in eval mode: the one batch embedder and the dataset extractor built on it.

:func:`embed` gives, for a batch the model's data preprocessor has prepared, ``{'feat': (B, C)}`` -- the pooled
backbone output ``h`` of a SimCLR model (plus ``'proj'``, its projection ``z``), or the features an
``ImageClassifier``'s head sees -- and is what both :func:`mmsimclr.apis.extract_features` (user images) and
:func:`extract_dataset_features` (a labelled dataset, for kNN / t-SNE / the online monitor) run per batch.

Under distributed training :func:`extract_dataset_features` lets each rank embed its own shard of the dataloader
and gathers the shards with ``mmengine.dist`` collectives, so every image is embedded exactly once.
"""
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmengine import dist
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP (or other mmengine) wrapper; ``model`` itself otherwise."""
    return model.module if is_model_wrapper(model) else model


def preprocess(model: torch.nn.Module, data: dict) -> Tuple[torch.Tensor, List]:
    """``(inputs (B, 3, H, W), data_samples)`` of a packed batch after the model's data preprocessor (test mode)."""
    data = model.data_preprocessor(data, False)
    inputs = data['inputs']
    if isinstance(inputs, (list, tuple)):  # a multi-view preprocessor: the one (unaugmented) view
        inputs = inputs[0]
    return inputs, data.get('data_samples')


def embed(model: torch.nn.Module, inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Embeddings of a preprocessed batch ``inputs (B, 3, H, W)``.

    A model with ``embed`` (SimCLR) gives its own ``{'feat': h (B, C), 'proj': z (B, d)}``; any other mmpretrain
    model (an ``ImageClassifier`` from a linear or supervised config) gives ``{'feat'}``: the last output of
    ``extract_feat`` (the neck's, i.e. what the head sees), global-average pooled if it is still ``(B, C, H, W)``.
    """
    model = unwrap(model)
    if hasattr(model, 'embed'):
        return model.embed(inputs)
    feats = model.extract_feat(inputs)
    last = feats[-1] if isinstance(feats, (list, tuple)) else feats
    return {'feat': last.mean(dim=(2, 3)) if last.dim() == 4 else last.flatten(1)}


@torch.no_grad()
def embed_batch(model: torch.nn.Module, data: dict, feature: str = 'feat') -> torch.Tensor:
    """``(B, D)`` embedding ``feature`` (``'feat'`` or, for SimCLR, ``'proj'``) of one dataloader batch
    (``default_collate`` output of a pipeline ending in ``PackInputs``)."""
    model = unwrap(model)
    out = embed(model, preprocess(model, data)[0])
    if feature not in out:
        raise KeyError(f'embed_batch: feature {feature!r} not produced by the model (it has {list(out)})')
    return out[feature]


def _all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate the rows of ``x`` from every rank (ranks may hold different numbers of rows)."""
    if dist.get_world_size() == 1:
        return x
    n = torch.tensor([x.shape[0]], dtype=torch.long)
    sizes = [int(s) for s in dist.all_gather(n)]
    pad = max(sizes) - x.shape[0]
    if pad:
        x = torch.cat([x, x.new_zeros((pad, ) + tuple(x.shape[1:]))])
    parts = dist.all_gather(x)
    return torch.cat([p[:s].cpu() for p, s in zip(parts, sizes)])


@torch.no_grad()
def extract_dataset_features(model,
                             dataloader,
                             feature: str = 'feat',
                             progress: bool = True,
                             logger=None,
                             desc: str = 'features',
                             embed_fn: Optional[Callable[[torch.nn.Module, dict], torch.Tensor]] = None,
                             missing: str = 'raise') -> Tuple[torch.Tensor, torch.Tensor]:
    """Embed every image of ``dataloader.dataset`` once, across all ranks.

    The model is put in eval mode (batch norm uses its running statistics) and restored afterwards. Each rank
    embeds the batches its sampler gives it; features, labels and ``sample_idx`` are gathered from all ranks and
    placed in dataset order (padding duplicates added by the sampler overwrite identical rows).

    ``embed_fn(model, batch) -> (B, D)`` replaces :func:`embed_batch` (and ``feature``) as the per-batch embedder,
    e.g. to embed several augmented views of each image side by side.

    ``missing``: what to do when some samples were never embedded -- mmengine's dataset replaces a sample whose
    image cannot be read (``LoadImageColor`` skips it) by another one -- ``'raise'`` (RuntimeError) or ``'drop'``
    (their rows are left out of the result).

    Returns:
        ``feats (len(dataset), D)`` float32 on the CPU and ``labels (len(dataset),)`` int64 (-1 where a sample
        has no ``gt_label``).
    """
    model_ = unwrap(model)
    was_training = model_.training
    model_.eval()
    rank = dist.get_rank()
    bar = ProgressBar(len(dataloader)) if progress and rank == 0 else None
    start = time.time()
    feats, labels, indices = [], [], []
    try:
        for data in dataloader:
            out = embed_fn(model_, data) if embed_fn is not None else embed_batch(model_, data, feature)
            feats.append(out.float().cpu())
            samples = data['data_samples']
            labels.append(torch.tensor([int(s.gt_label[0]) if 'gt_label' in s else -1 for s in samples]))
            indices.append(torch.tensor([int(s.sample_idx) for s in samples]))
            if bar is not None:
                bar.update()
    finally:
        model_.train(was_training)
    if bar is not None:
        print(flush=True)
    local_feats = torch.cat(feats) if feats else torch.zeros(0, 1)
    local_labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
    local_indices = torch.cat(indices) if indices else torch.zeros(0, dtype=torch.long)
    if dist.get_world_size() > 1:
        dim = torch.tensor([local_feats.shape[1] if feats else 0])
        dim = int(max(int(d) for d in dist.all_gather(dim)))
        if not feats:
            local_feats = torch.zeros(0, dim)
    all_feats = _all_gather_rows(local_feats)
    meta = _all_gather_rows(torch.stack([local_indices, local_labels], dim=1))
    n = len(dataloader.dataset)
    out_feats = torch.zeros(n, all_feats.shape[1])
    out_labels = torch.full((n, ), -1, dtype=torch.long)
    out_feats[meta[:, 0]] = all_feats
    out_labels[meta[:, 0]] = meta[:, 1]
    seen = torch.zeros(n, dtype=torch.bool)
    seen[meta[:, 0]] = True
    if not bool(seen.all()) and missing == 'drop':
        out_feats, out_labels = out_feats[seen], out_labels[seen]
    elif not bool(seen.all()):
        raise RuntimeError(f'extract_dataset_features: {int((~seen).sum())} of {n} samples were not embedded; the '
                           'dataloader sampler must cover the whole dataset (use DefaultSampler with shuffle=False)')
    if logger is not None:
        logger.info(f'embedded {n} images ({desc}) in {time.time() - start:.1f} s')
    return out_feats, out_labels
