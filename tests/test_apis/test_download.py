"""Downloads: cache, sha256 check, atomic rename, mirror, clear errors offline (local HTTP server, small files)."""
import hashlib
import io
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


def test_tampered_download_names_the_mirror_not_the_temporary_file(mirrored, cache, monkeypatch):
    good, bad = b'the published file', b'<html><body>Mirror login</body></html>'
    rel = f'mmselfsup/w-{sha8(good)}.pth'
    mirrored.add(rel, bad)
    with pytest.raises(ChecksumError) as err:
        fetch_checkpoint(OFFICIAL + rel, progress=False)
    msg = str(err.value)
    assert msg.startswith(f'The mirror $MMSIMCLR_MIRROR={mirrored.base} served a different file for {OFFICIAL + rel}: '
                          f'{mirrored.base + rel} gave sha256 {hashlib.sha256(bad).hexdigest()} ({len(bad)} bytes, '
                          f'an HTML page, not a checkpoint), but the file name says it starts with {sha8(good)}.')
    assert 'Nothing was cached' in msg and 'unset $MMSIMCLR_MIRROR' in msg
    assert '.part' not in msg and 'run again' not in msg
    assert not cache.exists() or os.listdir(cache) == []
    assert mirrored.count(rel) == 1


def test_tampered_download_without_mirror_names_the_url(server, cache):
    good, bad = b'the published file', os.urandom(300)
    url = server.base + f'w-{sha8(good)}.pth'
    server.add(f'w-{sha8(good)}.pth', bad)
    with pytest.raises(ChecksumError) as err:
        fetch_checkpoint(url, progress=False)
    msg = str(err.value)
    assert msg.startswith(f'{url} served a file with sha256 {hashlib.sha256(bad).hexdigest()} (300 bytes), but the '
                          f'file name says it starts with {sha8(good)}. Nothing was cached.')
    assert str(cache) in msg and '.part' not in msg
    assert not cache.exists() or os.listdir(cache) == []


def test_tampered_cached_file_is_removed_before_use(mirrored, cache):
    data = b'published'
    name = f'w-{sha8(data)}.pth'
    cache.mkdir()
    (cache / name).write_bytes(b'edited on disk')
    with pytest.raises(ChecksumError) as err:
        fetch_checkpoint(OFFICIAL + name, progress=False)
    assert str(err.value).startswith(f'Checkpoint {cache / name} (for {OFFICIAL + name}) is corrupted or not the '
                                     'published file: sha256 ')
    assert str(err.value).endswith('The cached copy has been deleted; run again to download it afresh.')
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
    wrong = f'mmselfsup/1.x/x-{sha8(b"other")}.pth'
    (tmp_path / 'mirror' / wrong).write_bytes(data)
    with pytest.raises(ChecksumError, match=r'It is the \$MMSIMCLR_MIRROR copy of .*: replace it with the published'):
        fetch_checkpoint(OFFICIAL + wrong)
    assert (tmp_path / 'mirror' / wrong).exists()  # the mirror's files are never deleted
    with pytest.raises(FileNotFoundError, match='MMSIMCLR_MIRROR'):
        fetch_checkpoint(OFFICIAL + 'mmselfsup/1.x/other-0123abcd.pth')


def test_missing_local_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        fetch_checkpoint(str(tmp_path / 'nope.pth'))


# ------------------------------------------------------------------------------------------------- progress bar
LONG_NAME = 'simclr_resnet50_16xb256-coslr-200e_in1k_20220825-{}.pth'


@pytest.mark.parametrize('width', [80, 60, 200])
def test_progress_bar_fits_the_terminal_mid_download(width):
    from rich.console import Console
    out = io.StringIO()
    console = Console(file=out, width=width)
    bar, task = download._progress(94_000_000, LONG_NAME.format('4d9cce50'), True, console=console)
    bar.advance(task, 30_000_000)
    console.print(bar.get_renderable())
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= width, lines
    assert ' 32% ' in lines[0] and '30.0/94.0 MB' in lines[0]
    if width >= 80:
        assert '4d9cce50.pth' in lines[0]  # the name is shortened in the middle: its hash stays visible
    if width >= 200:
        assert 'Downloading ' + LONG_NAME.format('4d9cce50') in lines[0]


def test_download_bar_on_an_80_column_terminal(mirrored, cache, monkeypatch, capsys):
    monkeypatch.setenv('COLUMNS', '80')  # rich sizes its console from $COLUMNS, as a terminal would
    data = os.urandom(3 * 10**6)
    rel = LONG_NAME.format(sha8(data))
    mirrored.add(rel, data)
    fetch_checkpoint(OFFICIAL + rel, progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines, 'no progress bar was drawn'
    assert all(len(line) <= 80 for line in lines), lines
    assert '100%' in lines[-1] and '3.0/3.0 MB' in lines[-1] and f'{sha8(data)}.pth' in lines[-1]
