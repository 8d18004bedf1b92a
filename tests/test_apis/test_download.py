"""Downloads: cache, sha256 check, atomic rename, mirror, clear errors offline (local HTTP server, small files)."""
import os
import os.path as osp
import socket

import pytest
import torch

from mmsimclr.apis import download
from mmsimclr.apis.download import ChecksumError, DownloadError, fetch_checkpoint

from .conftest import sha8

OFFICIAL = 'https://download.openmmlab.com/'


def test_expected_prefix_read_from_name():
    assert download.expected_sha256_prefix('a/b/x_20220825-4d9cce50.pth') == '4d9cce50'
    assert download.expected_sha256_prefix('epoch_200.pth') is None


def test_cache_dir_defaults_to_torch_hub_and_env_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv('MMSIMCLR_CACHE', raising=False)
    assert download.cache_dir() == osp.join(torch.hub.get_dir(), 'checkpoints')
    monkeypatch.setenv('MMSIMCLR_CACHE', str(tmp_path / 'c'))
    assert download.cache_dir() == str(tmp_path / 'c')


def test_mirror_rewrites_only_official_prefix(monkeypatch, tmp_path):
    url = OFFICIAL + 'mmselfsup/1.x/simclr/x/w-0123abcd.pth'
    monkeypatch.delenv('MMSIMCLR_MIRROR', raising=False)
    assert download.mirror_location(url) == url
    monkeypatch.setenv('MMSIMCLR_MIRROR', 'http://mirror.local/openmmlab')
    assert download.mirror_location(url) == 'http://mirror.local/openmmlab/mmselfsup/1.x/simclr/x/w-0123abcd.pth'
    assert download.mirror_location('https://example.com/w.pth') == 'https://example.com/w.pth'
    monkeypatch.setenv('MMSIMCLR_MIRROR', str(tmp_path))
    assert download.mirror_location(url) == str(tmp_path / 'mmselfsup/1.x/simclr/x/w-0123abcd.pth')


def test_download_verifies_caches_and_is_not_repeated(mirrored, cache):
    data = b'weights' * 1000
    rel = f'sub/w-{sha8(data)}.pth'
    mirrored.add(rel, data)
    path = fetch_checkpoint(OFFICIAL + rel, progress=False)
    assert path == str(cache / f'w-{sha8(data)}.pth')
    assert open(path, 'rb').read() == data
    assert fetch_checkpoint(OFFICIAL + rel, progress=False) == path
    assert mirrored.count(rel) == 1
    assert os.listdir(cache) == [osp.basename(path)]  # no temporary files left behind


def test_tampered_download_is_refused_and_removed(mirrored, cache):
    good, bad = b'the published file', b'something else'
    rel = f'w-{sha8(good)}.pth'
    mirrored.add(rel, bad)
    with pytest.raises(ChecksumError, match='deleted') as err:
        fetch_checkpoint(OFFICIAL + rel, progress=False)
    assert sha8(good) in str(err.value)
    assert not cache.exists() or os.listdir(cache) == []


def test_tampered_cached_file_is_removed_before_use(mirrored, cache):
    data = b'published'
    name = f'w-{sha8(data)}.pth'
    cache.mkdir()
    (cache / name).write_bytes(b'edited on disk')
    with pytest.raises(ChecksumError, match='deleted'):
        fetch_checkpoint(OFFICIAL + name, progress=False)
    assert not (cache / name).exists()
    mirrored.add(name, data)  # the next call downloads it afresh
    assert open(fetch_checkpoint(OFFICIAL + name, progress=False), 'rb').read() == data


def test_interrupted_download_leaves_no_file(mirrored, cache):
    data = os.urandom(1 << 16)
    rel = f'w-{sha8(data)}.pth'
    mirrored.add(rel, data, drop=True)
    with pytest.raises(DownloadError, match='interrupted'):
        fetch_checkpoint(OFFICIAL + rel, progress=False)
    assert mirrored.count(rel) == 1
    assert os.listdir(cache) == []


def test_http_error_names_url_and_destination(mirrored, cache):
    url = OFFICIAL + 'missing/w-0123abcd.pth'
    with pytest.raises(DownloadError) as err:
        fetch_checkpoint(url, progress=False)
    msg = str(err.value)
    assert '404' in msg and url in msg and str(cache / 'w-0123abcd.pth') in msg and 'MMSIMCLR_MIRROR' in msg


def test_offline_error_names_url_and_where_to_put_the_file(cache):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there: connection refused, as offline
    url = f'http://127.0.0.1:{port}/w-0123abcd.pth'
    with pytest.raises(DownloadError) as err:
        fetch_checkpoint(url, progress=False, timeout=5)
    assert url in str(err.value) and str(cache / 'w-0123abcd.pth') in str(err.value)
    assert not cache.exists() or os.listdir(cache) == []


def test_folder_mirror_is_used_in_place(tmp_path, cache, monkeypatch):
    data = b'mirrored weights'
    rel = f'mmselfsup/1.x/w-{sha8(data)}.pth'
    (tmp_path / 'mirror/mmselfsup/1.x').mkdir(parents=True)
    (tmp_path / 'mirror' / rel).write_bytes(data)
    monkeypatch.setenv('MMSIMCLR_MIRROR', str(tmp_path / 'mirror'))
    assert fetch_checkpoint(OFFICIAL + rel) == str(tmp_path / 'mirror' / rel)
    with pytest.raises(FileNotFoundError, match='MMSIMCLR_MIRROR'):
        fetch_checkpoint(OFFICIAL + 'mmselfsup/1.x/other-0123abcd.pth')


def test_missing_local_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        fetch_checkpoint(str(tmp_path / 'nope.pth'))
