"""tools/analysis/neighbours.py: embeddings, nearest-neighbour gallery and near-duplicate report of an unlabelled,
nested image folder (mixed formats, a corrupt file, an exact duplicate), with a tiny random-init checkpoint."""
import csv
import html
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

pytestmark = pytest.mark.shared_setup

CONFIG = 'simclr_r18_1xb16-coslr-2e_tiny'  # a packaged config name, as tools/train.py takes it
DUP_ORIGINAL = osp.join('a', 'b', 'shape2.png')
DUP_COPY = osp.join('c', "copy & 'dup' <2>.png")  # characters html.escape must escape


def _shape(i: int, size: int = 40) -> Image.Image:
    rng = np.random.default_rng(i)
    img = Image.new('RGB', (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
    x0, y0 = (int(v) for v in rng.integers(0, size // 2, 2))
    w = int(rng.integers(size // 4, size // 2))
    (ImageDraw.Draw(img).ellipse if i % 2 else ImageDraw.Draw(img).rectangle)(
        [x0, y0, x0 + w, y0 + w], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return img


def make_folder(root: str):
    """Nested folder: files at the root, in a/, a/b/ and c/; png / jpg / upper-case .JPG; grayscale, RGBA and 16-bit
    images; a truncated JPEG; a text file; an exact copy of a/b/shape2.png. Returns the readable files, relative."""
    for sub in ('a/b', 'c'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    readable = []

    def save(rel, img, **kw):
        img.save(osp.join(root, rel), **kw)
        readable.append(rel)

    save('top0.jpg', _shape(0), quality=90)
    save('top1.png', _shape(1))
    save(osp.join('a', 'shape3.JPG'), _shape(3), format='JPEG', quality=90)
    save(osp.join('a', 'shape4.png'), _shape(4))
    save(DUP_ORIGINAL, _shape(2))
    save(osp.join('a', 'b', 'shape5.jpeg'), _shape(5), quality=90)
    save(osp.join('c', 'gray.png'), _shape(6).convert('L'))
    rgba = _shape(7).convert('RGBA')
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (40, 1))))
    save(osp.join('c', 'rgba.PNG'), rgba)
    save(osp.join('c', 'deep16.png'), Image.fromarray(
        (np.asarray(_shape(8).convert('L'), dtype=np.uint16) * 257)))
    shutil.copy(osp.join(root, DUP_ORIGINAL), osp.join(root, DUP_COPY))
    readable.append(DUP_COPY)
    _shape(9).save(osp.join(root, 'a', 'broken.jpg'), quality=90)
    with open(osp.join(root, 'a', 'broken.jpg'), 'rb') as f:
        data = f.read()
    with open(osp.join(root, 'a', 'broken.jpg'), 'wb') as f:
        f.write(data[:len(data) // 2])  # truncated: no end-of-image marker
    with open(osp.join(root, 'notes.txt'), 'w') as f:
        f.write('not an image')
    return readable


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    """A random-init checkpoint of the tiny config, written as training's are read (``{'state_dict': ...}``)."""
    from mmsimclr.apis import get_model
    from mmsimclr.utils.config_path import resolve_config
    torch.manual_seed(0)
    model = get_model(resolve_config(CONFIG), device='cpu')
    path = str(tmp_path_factory.mktemp('nb_ckpt') / 'random.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    return path


@pytest.fixture(scope='module')
def run(tmp_path_factory, ckpt):
    """One run of the tool: 4 queries, k=3, the default threshold."""
    from tools.analysis.neighbours import main
    folder = str(tmp_path_factory.mktemp('nb_images'))
    readable = make_folder(folder)
    out_dir = str(tmp_path_factory.mktemp('nb_out'))
    with pytest.warns(UserWarning, match='broken.jpg'):
        result = main([CONFIG, folder, '--checkpoint', ckpt, '--out-dir', out_dir, '--num-queries', '4',
                       '--k', '3', '--batch-size', '4', '--device', 'cpu', '--seed', '1', '--no-progress'])
    return dict(result=result, folder=folder, readable=readable, out_dir=out_dir)


def _rows(path):
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def test_embeddings_npz_has_every_readable_image(run):
    result, folder = run['result'], run['folder']
    for name in ('embeddings.npz', 'neighbours.png', 'duplicates.csv', 'duplicates.html'):
        assert osp.isfile(osp.join(run['out_dir'], name)) and result[name] == osp.join(run['out_dir'], name)
    data = np.load(result['embeddings.npz'])
    paths = [str(p) for p in data['paths']]
    assert sorted(osp.relpath(p, folder) for p in paths) == sorted(run['readable'])
    assert data['feat'].dtype == np.float32 and data['feat'].shape == (len(run['readable']), 64)
    assert data['proj'].shape == (len(run['readable']), 32) and str(data['feature']) == 'feat'
    assert np.isfinite(data['feat']).all()
    assert not any('broken' in p or p.endswith('.txt') for p in paths)
    assert (result['num_images'], result['num_skipped']) == (len(run['readable']), 1)


def test_duplicates_csv_finds_the_copy_first(run):
    folder = run['folder']
    rows = _rows(run['result']['duplicates.csv'])
    assert rows and list(rows[0]) == ['path_a', 'path_b', 'similarity']
    assert len(rows) == run['result']['num_pairs']
    top = rows[0]
    assert {osp.relpath(top['path_a'], folder), osp.relpath(top['path_b'], folder)} == {DUP_ORIGINAL, DUP_COPY}
    assert float(top['similarity']) > 0.999
    sims = [float(r['similarity']) for r in rows]
    assert sims == sorted(sims, reverse=True) and min(sims) >= 0.95
    assert not any('broken' in r['path_a'] or 'broken' in r['path_b'] for r in rows)
    # the same pairs as the full similarity matrix, computed directly
    data = np.load(run['result']['embeddings.npz'])
    centred = data['feat'] - data['feat'].mean(axis=0)  # the folder's mean embedding subtracted
    np.testing.assert_allclose(data['mean'], data['feat'].mean(axis=0), rtol=1e-5, atol=1e-6)
    x = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    sim = x @ x.T
    paths = [str(p) for p in data['paths']]
    expected = {frozenset((paths[i], paths[j])) for i in range(len(x)) for j in range(i + 1, len(x))
                if sim[i, j] >= 0.95}
    assert {frozenset((r['path_a'], r['path_b'])) for r in rows} == expected


def test_duplicates_html_is_self_contained_and_escaped(run):
    with open(run['result']['duplicates.html'], encoding='utf-8') as f:
        page = f.read()
    copy_path = osp.join(run['folder'], DUP_COPY)
    assert html.escape(copy_path) in page and copy_path not in page  # '&', quotes and '<' escaped
    assert html.escape(osp.join(run['folder'], DUP_ORIGINAL)) in page
    assert page.count('<img src="data:image/jpeg;base64,') == 2 * min(run['result']['num_pairs'], 200)
    assert 'src="http' not in page and 'src="/' not in page


def test_gallery_png_and_neighbours_match_numpy(run):
    from tools.analysis.neighbours import nearest_neighbours, pick_queries
    with Image.open(run['result']['neighbours.png']) as png:
        png.verify()
    with Image.open(run['result']['neighbours.png']) as png:
        width, height = png.size
    rows, cols = 4, 3 + 1  # --num-queries 4, --k 3 (+ the query)
    assert width / height == pytest.approx(cols * 1.6 / (rows * 1.8), rel=0.02)
    feats = np.load(run['result']['embeddings.npz'])['feat']
    queries = pick_queries(len(feats), 4, seed=1)
    assert len(set(queries.tolist())) == 4 and np.array_equal(queries, pick_queries(len(feats), 4, seed=1))
    indices, sims = nearest_neighbours(feats, queries, 3)
    x = feats.astype(np.float64) / np.linalg.norm(feats, axis=1, keepdims=True)
    for row, q in enumerate(queries):
        s = x @ x[q]
        s[q] = -np.inf
        expected = np.argsort(-s, kind='stable')[:3]
        np.testing.assert_allclose(sims[row], s[expected], atol=1e-5)
        np.testing.assert_allclose(s[indices[row]], s[expected], atol=1e-5)  # the same ranks (ties aside)
        assert q not in indices[row]


def test_neighbours_clip_k_and_find_duplicates_in_blocks():
    from tools.analysis.neighbours import find_duplicates, nearest_neighbours
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(50, 8)).astype(np.float32)
    feats[30] = feats[7] * 3  # same direction: similarity 1
    indices, sims = nearest_neighbours(feats, [7, 0], k=100)  # k >= N: every other image
    assert indices.shape == sims.shape == (2, 49)
    assert indices[0, 0] == 30 and sims[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert sorted(indices[1].tolist()) == list(range(1, 50))
    x = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    full = x @ x.T
    want = sorted(((full[a, b], a, b) for a in range(50) for b in range(a + 1, 50) if full[a, b] >= 0.5),
                  reverse=True)
    for block in (50, 7, 1 << 24):  # one row per block, a few rows, everything at once
        i, j, s = find_duplicates(feats, 0.5, block_entries=block)
        assert i.tolist() and (i < j).all() and (np.diff(s) <= 0).all()
        assert sorted(zip(i.tolist(), j.tolist())) == sorted((a, b) for _, a, b in want)
        assert (i[0], j[0]) == (7, 30)
    with pytest.warns(UserWarning, match='kept the 3 most similar'):
        i, j, s = find_duplicates(feats, 0.3, max_pairs=3, block_entries=50)
    assert len(s) == 3 and (i[0], j[0]) == (7, 30)
    np.testing.assert_allclose(s, [w[0] for w in want[:3]], atol=1e-6)


def test_clear_errors(tmp_path, ckpt, capsys):
    from tools.analysis.neighbours import main
    folder = tmp_path / 'imgs'
    folder.mkdir()
    out = ['--out-dir', str(tmp_path / 'out'), '--device', 'cpu', '--no-progress']
    for bad in ('0', '1.5', '-0.1'):
        with pytest.raises(SystemExit):
            main([CONFIG, str(folder), '--dup-threshold', bad] + out)
        assert 'must be in (0, 1]' in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match='holds no image files'):
        main([CONFIG, str(folder), '--checkpoint', ckpt] + out)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        main([CONFIG, str(tmp_path / 'nowhere'), '--checkpoint', ckpt] + out)
    Image.new('RGB', (8, 8)).save(folder / 'x.png')
    with pytest.raises(FileNotFoundError, match='missing.pth does not exist'):
        main([CONFIG, str(folder), '--checkpoint', str(tmp_path / 'missing.pth')] + out)
    with pytest.raises(ValueError, match='--checkpoint'):  # a config alone has no trained weights
        main([CONFIG, str(folder)] + out)
    with pytest.raises(FileNotFoundError, match='Nor is it a model-zoo name'):
        main(['simclr_r18_1xb16-coslr-2e_tinyy', str(folder), '--checkpoint', ckpt] + out)
    (folder / 'x.png').write_bytes(b'')  # the only image is empty
    with pytest.raises(ValueError, match='could be read'), pytest.warns(UserWarning, match='x.png'):
        main([CONFIG, str(folder), '--checkpoint', ckpt] + out)
    assert not (tmp_path / 'out').exists()
