"""Nearest neighbours and near-duplicates of an unlabelled image folder in a model's embedding.

    python tools/analysis/neighbours.py MODEL FOLDER [--checkpoint CKPT] [--out-dir DIR] [--num-queries 16]
        [--k 8] [--dup-threshold 0.95] [--feature feat|proj] [--batch-size 64] [--device cpu] [--seed 0]

MODEL is anything ``mmsimclr.get_model`` accepts: a config file, a packaged config or model-zoo name, or a
checkpoint written by training (it stores its config). Its weights: ``--checkpoint`` (a .pth path or URL, or
``random`` for the randomly initialised network); without it, MODEL's own (a checkpoint) or the zoo entry's
published weights. FOLDER is searched recursively for image files; files that cannot be read are skipped with a
warning. Every image is embedded with the config's evaluation pipeline (no augmentation); similarities are the
cosine similarities of the ``--feature`` embeddings (``feat``: the backbone's pooled ``h``, default; ``proj``:
SimCLR's projection ``z``) minus their mean over the folder (``--no-center``: as they are): pooled ReLU features
are all non-negative, so raw cosines of unrelated images crowd near 1 and a fixed threshold means little; centred,
they spread around 0. Written to ``--out-dir``:

- ``embeddings.npz``: ``feat`` (N, D) float32 (and ``proj`` for SimCLR models), ``paths`` (N,) -- row i is
  file ``paths[i]`` --, ``feature``, the embedding the similarities below use, and ``mean``, the mean that was
  subtracted from it (zeros with ``--no-center``);
- ``neighbours.png``: ``--num-queries`` random images (seeded), each row the query then its ``--k`` nearest
  neighbours (itself excluded), each labelled with its similarity;
- ``duplicates.csv``: every pair with similarity >= ``--dup-threshold`` (path_a, path_b, similarity; most
  similar first), found block by block, so no N x N matrix is held; ``duplicates.html``: a self-contained page
  with thumbnails of the most similar pairs (``--html-pairs``).
"""
import argparse
import base64
import csv
import html
import io
import os
import os.path as osp
import time
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy as np

#: Similarity entries computed at once by the duplicate search (64 MiB of float32).
BLOCK_ENTRIES = 1 << 24


def _threshold(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f'must be in (0, 1] (a cosine similarity), got {text}')
    return value


def _at_least(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be >= {minimum}, got {text}')
        return value
    return parse


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('model', help='config file, packaged config / model-zoo name, or a training checkpoint (.pth)')
    p.add_argument('folder', help='image folder (searched recursively)')
    p.add_argument('--checkpoint', help='weights: a .pth path or URL, or "random" (default: MODEL\'s own, or the '
                   'zoo entry\'s published weights)')
    p.add_argument('--out-dir', default='neighbours', help='folder for the outputs (default ./neighbours)')
    p.add_argument('--num-queries', type=_at_least(1), default=16, help='rows of the gallery (default 16)')
    p.add_argument('--k', type=_at_least(1), default=8, help='neighbours per query (default 8)')
    p.add_argument('--dup-threshold', type=_threshold, default=0.95,
                   help='cosine similarity from which a pair is a near-duplicate, in (0, 1] (default 0.95)')
    p.add_argument('--feature', default='feat', choices=['feat', 'proj'],
                   help='"feat" (backbone, default) or "proj" (SimCLR projection)')
    p.add_argument('--batch-size', type=_at_least(1), default=64)
    p.add_argument('--device', help='"cpu", "cuda", "cuda:N" (default: the GPU when there is one)')
    p.add_argument('--seed', type=int, default=0, help='seed of the query choice')
    p.add_argument('--max-pairs', type=_at_least(1), default=1_000_000,
                   help='keep at most this many (the most similar) duplicate pairs (default 1e6)')
    p.add_argument('--html-pairs', type=_at_least(0), default=200,
                   help='pairs shown with thumbnails in duplicates.html (default 200)')
    p.add_argument('--thumb-size', type=_at_least(8), default=96, help='thumbnail side in pixels (default 96)')
    p.add_argument('--no-center', action='store_true',
                   help='compare the raw embeddings instead of the embeddings minus the folder\'s mean one')
    p.add_argument('--no-progress', action='store_true')
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------------- the model
def resolve_model(model: str) -> str:
    """MODEL as ``get_model`` takes it: a checkpoint or a model-zoo name unchanged, a packaged config name (as
    ``tools/train.py`` takes it) as its file.

    Raises:
        FileNotFoundError: neither a file, a packaged config nor a model-zoo name (the closest names are given).
    """
    from mmsimclr.apis.model import CHECKPOINT_SUFFIXES
    from mmsimclr.apis.model_zoo import all_models
    from mmsimclr.utils.config_path import ConfigNotFoundError, resolve_config
    if model.endswith(CHECKPOINT_SUFFIXES):
        if not osp.isfile(model):
            raise FileNotFoundError(f'Checkpoint {model} does not exist')
        return model
    if model in all_models() and not osp.isfile(model):
        return model
    try:
        return resolve_config(model)
    except ConfigNotFoundError as e:
        raise FileNotFoundError(f'{e} Nor is it a model-zoo name (see mmsimclr.list_models()).') from None


def weights_for(model: str, checkpoint: Optional[str]):
    """``get_model``'s ``pretrained`` for MODEL and ``--checkpoint``: a path/URL, ``False`` (random, or a
    checkpoint MODEL that brings its own) or ``True`` (the zoo entry's published weights).

    Raises:
        FileNotFoundError: ``checkpoint`` is a local path that does not exist.
        ValueError: no weights are known (a config without ``--checkpoint`` and without published weights).
    """
    from mmsimclr.apis.download import is_url
    from mmsimclr.apis.model import CHECKPOINT_SUFFIXES
    from mmsimclr.apis.model_zoo import find_by_config, get_model_info
    if checkpoint == 'random':
        return False
    if checkpoint is not None:
        if not is_url(checkpoint) and not osp.isfile(osp.expanduser(checkpoint)):
            raise FileNotFoundError(f'Checkpoint {checkpoint} does not exist; pass the .pth file written by '
                                    'training (e.g. work_dirs/CONFIG/epoch_N.pth), a URL, or "random"')
        return checkpoint
    if model.endswith(CHECKPOINT_SUFFIXES):
        return False  # the checkpoint brings its weights (and its config)
    info = find_by_config(model) if (model.endswith('.py') or osp.isfile(model)) else get_model_info(model)
    if info is not None and info.weights:
        return True
    raise ValueError(f'No weights for {model}: it is a config without published weights. Pass the checkpoint '
                     'written by pretraining with --checkpoint work_dirs/.../epoch_N.pth (or --checkpoint random '
                     'for the randomly initialised network)')


# -------------------------------------------------------------------------------------------------- similarities
def l2_normalize(feats) -> np.ndarray:
    """Rows scaled to unit length (float32); all-zero rows stay zero."""
    x = np.asarray(feats, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pick_queries(n: int, num: int, seed: int = 0) -> np.ndarray:
    """``min(num, n)`` distinct row indices in ``[0, n)``, chosen with ``seed``, sorted."""
    return np.sort(np.random.default_rng(seed).choice(n, size=min(num, n), replace=False))


def nearest_neighbours(feats, queries: Sequence[int], k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``feats`` most cosine-similar to each query row, the query itself excluded.

    ``k`` is clipped to ``N - 1``. Returns ``(indices, similarities)``, both ``(len(queries), k)``, most similar
    first (ties: lower index first).
    """
    x = l2_normalize(feats)
    queries = np.asarray(queries, dtype=np.int64)
    k = max(0, min(k, len(x) - 1))
    sims = x[queries] @ x.T
    sims[np.arange(len(queries)), queries] = -np.inf
    order = np.argsort(-sims, axis=1, kind='stable')[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def _bar(description: str, enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    return Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled)


def find_duplicates(feats, threshold: float, max_pairs: int = 1_000_000, block_entries: int = BLOCK_ENTRIES,
                    progress: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` whose cosine similarity is >= ``threshold``, computed a block of rows at a time (about
    ``block_entries`` similarities each), so memory stays O(N) per block, never N x N.

    Returns ``(i, j, similarity)`` sorted by similarity, highest first (ties: by ``i``, then ``j``). Beyond
    ``max_pairs`` pairs only the most similar are kept, with a warning.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f'threshold must be in (0, 1], got {threshold}')
    x = l2_normalize(feats)
    n = len(x)
    rows = max(1, min(n, block_entries // max(n, 1)))
    found_i: List[np.ndarray] = []
    found_j: List[np.ndarray] = []
    found_s: List[np.ndarray] = []
    held = 0
    truncated = False
    starts = range(0, n, rows)
    with _bar('Searching duplicates', progress and len(starts) > 1) as bar:
        task = bar.add_task('duplicates', total=n)
        for start in starts:
            stop = min(start + rows, n)
            block = x[start:stop] @ x[start:].T  # rows start..stop against columns start..n
            r, c = np.nonzero(block >= threshold)
            keep = c > r  # column start + c after row start + r: each pair once, no self-pairs
            r, c = r[keep], c[keep]
            found_i.append(r + start)
            found_j.append(c + start)
            found_s.append(block[r, c])
            held += len(r)
            if held > 2 * max_pairs:  # prune now and then, so that a low threshold cannot exhaust memory
                i, j, s = (np.concatenate(a) for a in (found_i, found_j, found_s))
                top = np.argpartition(-s, max_pairs)[:max_pairs]
                found_i, found_j, found_s, held, truncated = [i[top]], [j[top]], [s[top]], max_pairs, True
            bar.advance(task, stop - start)
    i, j, s = (np.concatenate(a) if a else np.zeros(0) for a in (found_i, found_j, found_s))
    if len(s) > max_pairs:
        truncated = True
    order = np.lexsort((j, i, -s))[:max_pairs]
    if truncated:
        warnings.warn(f'More than {max_pairs} pairs have similarity >= {threshold}; kept the {max_pairs} most '
                      'similar. Raise --dup-threshold (or --max-pairs).', stacklevel=2)
    return (i[order].astype(np.int64), j[order].astype(np.int64),
            np.clip(s[order], -1.0, 1.0).astype(np.float32))


# --------------------------------------------------------------------------------------------------- thumbnails
def load_thumbnail(path: str, size: int = 96):
    """``path`` as an RGB PIL image at most ``size`` x ``size`` (aspect kept), read with training's loader
    (grayscale, RGBA, palette, 16-bit... become 8-bit RGB); a grey square when it cannot be read."""
    from PIL import Image

    from mmsimclr.datasets.transforms.load_image_color import LoadImageColor
    try:
        img = LoadImageColor(channel_order='rgb', min_side=size, on_bad_image='raise')(dict(img_path=path))['img']
        thumb = Image.fromarray(img)
    except Exception as e:  # the file changed or vanished since it was embedded
        warnings.warn(f'Cannot draw a thumbnail of {path}: {e}')
        return Image.new('RGB', (size, size), (128, 128, 128))
    thumb.thumbnail((size, size))
    return thumb


def _short(text: str, width: int = 22) -> str:
    return text if len(text) <= width else '...' + text[-(width - 3):]


def plot_gallery(paths: Sequence[str], queries: Sequence[int], indices: np.ndarray, sims: np.ndarray, out: str,
                 thumb_size: int = 96, root: Optional[str] = None) -> str:
    """PNG grid: one row per query, its thumbnail then its neighbours' (``indices``, ``sims``: ``(q, k)``), each
    titled with its similarity. Figure size ``(k + 1) * 1.6`` x ``q * 1.8`` inches at 100 dpi."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows, cols = len(queries), indices.shape[1] + 1
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.8), dpi=100, squeeze=False)

    def name(i):
        return _short(osp.relpath(paths[i], root) if root else osp.basename(paths[i]))

    for r, q in enumerate(queries):
        cells = [(int(q), f'query\n{name(q)}', 'tab:blue')]
        cells += [(int(j), f'{float(s):.3f}\n{name(j)}', 'black') for j, s in zip(indices[r], sims[r])]
        for c, (i, title, colour) in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(np.asarray(load_thumbnail(paths[i], thumb_size)))
            ax.set_title(title, fontsize=6, color=colour)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(2 if c == 0 else 0.5)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


# --------------------------------------------------------------------------------------------- duplicate reports
def write_duplicates_csv(paths: Sequence[str], i, j, sims, out: str) -> str:
    """``path_a,path_b,similarity`` rows, in the given (most similar first) order."""
    with open(out, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['path_a', 'path_b', 'similarity'])
        for a, b, s in zip(i, j, sims):
            writer.writerow([paths[a], paths[b], f'{float(s):.6f}'])
    return out


def _data_uri(path: str, size: int) -> str:
    buf = io.BytesIO()
    load_thumbnail(path, size).save(buf, format='JPEG', quality=85)
    return 'data:image/jpeg;base64,' + base64.b64encode(buf.getvalue()).decode('ascii')


def write_duplicates_html(paths: Sequence[str], i, j, sims, out: str, threshold: float, max_rows: int = 200,
                          thumb_size: int = 96) -> str:
    """A self-contained page (thumbnails embedded as base64 JPEGs) of the first ``max_rows`` pairs."""
    shown = min(len(sims), max_rows)
    uris = {}

    def thumb(k):
        if k not in uris:
            uris[k] = _data_uri(paths[k], thumb_size)
        return uris[k]

    rows = []
    for rank in range(shown):
        a, b = int(i[rank]), int(j[rank])
        rows.append(f'<tr><td>{rank + 1}</td><td>{float(sims[rank]):.4f}</td>'
                    f'<td><img src="{thumb(a)}" alt=""><br><code>{html.escape(paths[a])}</code></td>'
                    f'<td><img src="{thumb(b)}" alt=""><br><code>{html.escape(paths[b])}</code></td></tr>')
    note = (f'{len(sims)} pair(s) with cosine similarity &gt;= {threshold:g}'
            + (f'; the {shown} most similar are shown, all are in duplicates.csv' if shown < len(sims) else ''))
    page = ['<!DOCTYPE html>', '<html><head><meta charset="utf-8"><title>Near-duplicates</title>',
            '<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;'
            'padding:4px;vertical-align:top;text-align:center}code{font-size:11px;word-break:break-all}</style>',
            '</head><body>', '<h1>Near-duplicates</h1>', f'<p>{note}</p>']
    if shown:
        page += ['<table><tr><th>#</th><th>similarity</th><th>image A</th><th>image B</th></tr>'] + rows
        page += ['</table>']
    page += ['</body></html>']
    with open(out, 'w', encoding='utf-8') as f:
        f.write('\n'.join(page) + '\n')
    return out


# ------------------------------------------------------------------------------------------------------------ main
def main(argv=None) -> dict:
    """Run the tool; returns the paths of the files written and the counts (``num_images``, ``num_pairs``...)."""
    args = parse_args(argv)
    from mmsimclr.apis import extract_features, get_model
    from mmsimclr.apis.images import expand_images

    if not osp.isdir(args.folder):
        raise FileNotFoundError(f'Image folder {args.folder} does not exist (or is not a folder)')
    files = expand_images(args.folder)  # FileNotFoundError naming the folder when it holds no image file
    model_name = resolve_model(args.model)
    pretrained = weights_for(model_name, args.checkpoint)
    if pretrained is False and args.checkpoint == 'random':
        warnings.warn('--checkpoint random: the embeddings are those of an untrained network', stacklevel=2)
    # 'feat' needs only the backbone's weights (a SimCLR checkpoint may feed a linear config); 'proj' the neck's
    model = get_model(model_name, pretrained=pretrained, device=args.device, strict=args.feature == 'proj')
    progress = not args.no_progress

    start = time.time()
    result = extract_features(model, files, batch_size=args.batch_size, progress=progress)
    if args.feature not in result:
        given = ', '.join(sorted(key for key in result if key not in ('paths', 'indices')))
        raise ValueError(f'The model gives no "{args.feature}" embedding (it gives {given}); use --feature feat')
    paths = [str(p) for p in result['paths']]
    feats = result[args.feature]
    n = len(paths)
    embed_s = time.time() - start

    os.makedirs(args.out_dir, exist_ok=True)
    out = {name: osp.join(args.out_dir, name) for name in
           ('embeddings.npz', 'neighbours.png', 'duplicates.csv', 'duplicates.html')}
    arrays = {key: np.asarray(result[key], dtype=np.float32) for key in ('feat', 'proj') if key in result}

    # centred: backbone features come out of a ReLU, so every raw cosine similarity is high (on a CIFAR-10 sample:
    # median 0.84, and 804 of 45,150 pairs >= 0.95); minus the folder's mean embedding, unrelated images are near 0
    # (median -0.02) and only true near-copies pass 0.95 (2 pairs, the planted copy first)
    mean = np.zeros((1, feats.shape[1]), feats.dtype) if args.no_center else feats.mean(axis=0, keepdims=True)
    arrays['mean'] = mean[0].astype(np.float32)
    np.savez(out['embeddings.npz'], paths=np.array(paths, dtype=str), feature=np.array(args.feature), **arrays)
    feats = feats - mean

    queries = pick_queries(n, args.num_queries, args.seed)
    k = min(args.k, n - 1)
    if k < args.k:
        warnings.warn(f'--k {args.k} needs more than {n} readable image(s); showing {k} neighbour(s)', stacklevel=2)
    indices, sims = nearest_neighbours(feats, queries, k)
    plot_gallery(paths, queries, indices, sims, out['neighbours.png'], args.thumb_size, root=args.folder)

    di, dj, ds = find_duplicates(feats, args.dup_threshold, args.max_pairs, progress=progress)
    write_duplicates_csv(paths, di, dj, ds, out['duplicates.csv'])
    write_duplicates_html(paths, di, dj, ds, out['duplicates.html'], args.dup_threshold, args.html_pairs,
                          args.thumb_size)

    skipped = len(files) - n
    print(f'{n} image(s) embedded ({args.feature}, {feats.shape[1]}-d) in {embed_s:.1f} s'
          + (f'; {skipped} unreadable file(s) skipped' if skipped else ''))
    print(f'{len(queries)} queries x {k} neighbours; {len(ds)} near-duplicate pair(s) with cosine similarity '
          f'>= {args.dup_threshold:g}')
    print('wrote ' + ', '.join(out.values()))
    return dict(out, num_images=n, num_skipped=skipped, num_pairs=int(len(ds)))


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'neighbours.py: error: {e}')
