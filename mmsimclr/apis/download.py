"""Verified, cached checkpoint downloads (stdlib ``urllib`` only).

- Cache: ``$MMSIMCLR_CACHE`` if set, else torch hub's checkpoint folder (``torch.hub.get_dir()/checkpoints``).
  A file is downloaded once and found there by its name afterwards.
- Integrity: a file named ``<stem>-<hex>.pth`` (OpenMMLab's and torch hub's convention) must have a sha256 that
  starts with ``<hex>``. This is checked after every download and before every use; a cached file that fails the
  check is deleted with an error that says so; a download that fails it is named by the URL (the mirror's, when
  one is set) it came from, with the expected prefix and what was received (size, and whether it is an HTML page).
- Atomicity: the download goes to a temporary ``*.part`` file in the cache folder, is checked, and only then renamed
  to its final name (``os.replace``), so an interrupted or corrupted download never looks like a cached checkpoint.
- Mirror: ``$MMSIMCLR_MIRROR`` (an http(s) base URL, or a local folder / ``file://`` URL laid out like the server)
  replaces the ``https://download.openmmlab.com/`` prefix of official URLs, for clusters without internet access;
  the SimCLR paper's files (``https://storage.googleapis.com/...``) are under ``<mirror>/storage.googleapis.com/``.
- Progress: a bar on stderr sized to the terminal (name shortened in the middle; percentage and size always shown).
"""
import hashlib
import http.client
import os
import os.path as osp
import re
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional

import torch.hub
from mmengine.runner.checkpoint import CheckpointLoader
from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)
from rich.table import Column

from mmsimclr.utils.checkpoint import safe_torch_load

CACHE_ENV = 'MMSIMCLR_CACHE'
MIRROR_ENV = 'MMSIMCLR_MIRROR'
OFFICIAL_PREFIX = 'https://download.openmmlab.com/'
#: Other publishers' hosts a mirror can stand in for: their files live under ``<mirror>/<host>/<path>``.
MIRRORED_HOSTS = ('https://storage.googleapis.com/', )

_HASH_IN_NAME = re.compile(r'-([0-9a-f]{8,64})\.[A-Za-z0-9]+$')
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A checkpoint could not be fetched (offline, HTTP error, interrupted transfer, missing mirror file)."""


class ChecksumError(RuntimeError):
    """A checkpoint's sha256 does not start with the prefix in its file name."""


def cache_dir() -> str:
    """Folder that holds downloaded checkpoints (``$MMSIMCLR_CACHE`` or ``torch.hub.get_dir()/checkpoints``)."""
    folder = os.environ.get(CACHE_ENV)
    if not folder:
        folder = osp.join(torch.hub.get_dir(), 'checkpoints')
    return osp.abspath(osp.expanduser(folder))


def is_url(path: str) -> bool:
    """Whether ``path`` is an http(s) or file URL rather than a local path."""
    return isinstance(path, str) and path.split('://', 1)[0].lower() in ('http', 'https', 'file') and '://' in path


def mirror_location(url: str) -> str:
    """``url`` with the official ``https://download.openmmlab.com/`` prefix replaced by ``$MMSIMCLR_MIRROR``.

    Returns a URL for an http(s) mirror and a local path for a folder (or ``file://``) mirror; ``url`` unchanged when
    no mirror is set or it is not an official URL.
    """
    mirror = os.environ.get(MIRROR_ENV, '').strip()
    if mirror and url.startswith(OFFICIAL_PREFIX):
        relative = url[len(OFFICIAL_PREFIX):]
    elif mirror and url.startswith(MIRRORED_HOSTS):  # <mirror>/storage.googleapis.com/...
        relative = url.split('://', 1)[1]
    else:
        return url
    if mirror.startswith('file://'):
        mirror = urllib.request.url2pathname(urllib.parse.urlparse(mirror).path)
    if is_url(mirror):
        return mirror.rstrip('/') + '/' + relative
    return osp.join(osp.abspath(osp.expanduser(mirror)), *relative.split('/'))


def expected_sha256_prefix(filename: str) -> Optional[str]:
    """The hex digits after the last ``-`` of a file name (``..._20220825-4d9cce50.pth`` -> ``'4d9cce50'``), or
    None when the name carries no hash."""
    match = _HASH_IN_NAME.search(osp.basename(filename))
    return match.group(1) if match else None


def sha256_of(path: str) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _what_was_received(path: str) -> str:
    """``'1234 bytes'``, plus a note when the bytes are an HTML/text page (an error or login page served with
    status 200), not a checkpoint."""
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(512).lstrip()
    kind = ''
    if head[:1] == b'<' or head[:9].lower() == b'<!doctype':
        kind = ', an HTML page, not a checkpoint'
    elif head and all(32 <= b < 127 or b in b'\t\r\n' for b in head):
        kind = ', plain text, not a checkpoint'
    return f'{size} bytes{kind}'


def verify_sha256(path: str, prefix: Optional[str], source: str, remove: bool = True,
                  received_from: Optional[str] = None) -> None:
    """Check that ``path``'s sha256 starts with ``prefix`` (no-op for None).

    Args:
        path: the file to check.
        prefix: hex digits the sha256 must start with (from the published file name).
        source: the URL or path the user asked for.
        remove: delete the file on a mismatch (a cached copy, or a download's temporary file).
        received_from: the URL the bytes of a fresh download came from (the mirror's, when one is set); the
            message then names it instead of the temporary file.

    Raises:
        ChecksumError: mismatch, naming where the file came from, the expected prefix and what was received.
    """
    if not prefix:
        return
    actual = sha256_of(path)
    if actual.startswith(prefix):
        return
    got = f'sha256 {actual} ({_what_was_received(path)}), but the file name says it starts with {prefix}'
    if remove:
        os.remove(path)
    if received_from is not None:
        mirror = os.environ.get(MIRROR_ENV, '').strip()
        if received_from != source:
            raise ChecksumError(
                f'The mirror ${MIRROR_ENV}={mirror} served a different file for {source}: {received_from} gave '
                f'{got}. Nothing was cached. Downloading again will get the same bytes: replace that file on the '
                f'mirror with the published one (sha256 starting with {prefix}), or unset ${MIRROR_ENV} to '
                'download from OpenMMLab.')
        raise ChecksumError(
            f'{received_from} served a file with {got}. Nothing was cached. That is not the published file (a proxy '
            'or captive portal, or the file was replaced on the server); check what that URL serves from this '
            f'machine, or put the published file in {cache_dir()} or set ${MIRROR_ENV} to a mirror that has it.')
    what = f'Checkpoint {path} (for {source}) is corrupted or not the published file: {got}.'
    if remove:
        raise ChecksumError(f'{what} The cached copy has been deleted; run again to download it afresh.')
    if os.environ.get(MIRROR_ENV, '').strip() and source.startswith(OFFICIAL_PREFIX):  # a folder mirror's file
        raise ChecksumError(f'{what} It is the ${MIRROR_ENV} copy of {source}: replace it with the published file.')
    raise ChecksumError(f'{what} Replace it with the right file.')


#: Widths of the progress bar's fixed columns: percentage, size ("123.4/456.7 MB"), speed ("123.4 kB/s"), time left.
_PERCENT_W, _SIZE_W, _SPEED_W, _TIME_W = 4, 14, 10, 7
_MIN_BAR_W, _MAX_BAR_W, _MIN_NAME_W = 8, 40, 12


def _shorten(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters (the end of a checkpoint name holds its hash)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:max(width, 0)]
    tail = (width - 1) // 2
    return text[:width - 1 - tail] + '\u2026' + text[len(text) - tail:]


def _progress(total: Optional[int], filename: str, enabled: bool, console=None):
    """A download bar that fits the terminal: ``<name> <bar> 32% 30.0/94.0 MB 10.2 MB/s 0:00:06``.

    The percentage, size, speed and time columns have fixed widths; the file name (middle-shortened) and the bar
    share the rest, so a long checkpoint name on an 80-column terminal no longer pushes everything into "...".
    """
    console = console or Console(stderr=True)

    def col(width, justify='right'):
        return Column(width=width, no_wrap=True, justify=justify, overflow='ignore')

    fixed = [TaskProgressColumn(table_column=col(_PERCENT_W)), DownloadColumn(table_column=col(_SIZE_W)),
             TransferSpeedColumn(table_column=col(_SPEED_W)), TimeRemainingColumn(table_column=col(_TIME_W))]
    widths = [_PERCENT_W, _SIZE_W, _SPEED_W, _TIME_W]
    for drop in (2, 2):  # a narrow terminal: the speed goes first, then the time left; never the size
        if console.width - sum(widths) - len(widths) - 1 >= _MIN_NAME_W + _MIN_BAR_W:
            break
        del fixed[drop], widths[drop]
    room = console.width - sum(widths) - len(widths) - 1  # name + bar; one space between columns
    label = f'Downloading {filename}'
    if len(label) > room - _MIN_BAR_W:
        label = filename
    label = _shorten(label, max(room - _MIN_BAR_W, 1))
    bar_width = max(_MIN_BAR_W, min(_MAX_BAR_W, room - len(label)))
    bar = Progress(TextColumn('{task.description}', table_column=col(len(label), 'left')),
                   BarColumn(bar_width=bar_width, table_column=col(bar_width, 'left')), *fixed,
                   console=console, disable=not enabled)
    task = bar.add_task(label, total=total)
    return bar, task


def _offline_hint(url: str, source: str, dst: str) -> str:
    shown = url if url == source else f'{url} (mirror of {source})'
    return (f'Could not download {shown}. Without internet access, fetch that file on another machine and put it at '
            f'{dst} (the cache folder; ${CACHE_ENV} changes it), or set ${MIRROR_ENV} to a folder or http(s) URL '
            f'that mirrors {OFFICIAL_PREFIX}.')


def _stream_to(url: str, source: str, dst: str, prefix: Optional[str], progress: bool, timeout: float) -> None:
    """Download ``url`` into ``dst`` via a temporary file in the same folder; verify, then rename."""
    folder = osp.dirname(dst)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=osp.basename(dst) + '.', suffix='.part', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as out:
            request = urllib.request.Request(url, headers={'User-Agent': 'mmsimclr'})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                length = response.headers.get('Content-Length')
                total = int(length) if length and length.isdigit() else None
                received = 0
                bar, task = _progress(total, osp.basename(dst), progress)
                with bar:
                    for chunk in iter(lambda: response.read(_CHUNK), b''):
                        out.write(chunk)
                        received += len(chunk)
                        bar.advance(task, len(chunk))
        if total is not None and received != total:
            raise DownloadError(f'Download of {url} was interrupted after {received} of {total} bytes; nothing was '
                                'cached, run again to retry.')
        verify_sha256(tmp, prefix, source, received_from=url)
        os.replace(tmp, dst)
    except urllib.error.HTTPError as e:
        raise DownloadError(f'{_offline_hint(url, source, dst)} The server answered HTTP {e.code} {e.reason}.') from e
    except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError) as e:
        raise DownloadError(f'Download of {url} was interrupted ({e!r}); nothing was cached, run again to '
                            'retry.') from e
    except urllib.error.URLError as e:
        raise DownloadError(f'{_offline_hint(url, source, dst)} Reason: {e.reason}.') from e
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def fetch_checkpoint(source: str, progress: bool = True, check_hash: bool = True, timeout: float = 60) -> str:
    """Local path of a verified checkpoint given a URL (downloaded once into :func:`cache_dir`) or a local path.

    Official ``https://download.openmmlab.com/`` URLs go through ``$MMSIMCLR_MIRROR`` when it is set. With
    ``check_hash``, a file whose name carries a hex suffix is checked against it before it is returned.

    Args:
        source (str): an ``http(s)://`` URL (downloaded once into :func:`cache_dir`, under the URL's file name), a
            ``file://`` URL or a local path (``~`` expanded; used in place, never copied nor deleted).
        progress (bool): show a progress bar on stderr while downloading; nothing is shown for a cached or local
            file. Defaults to True.
        check_hash (bool): check that the file's sha256 starts with the hex digits at the end of its name
            (``<stem>-<hex>.pth``), for a fresh download, a cached copy and a local file alike; a name without
            such digits is not checked. Defaults to True; False skips the check (e.g. a file renamed by hand).
        timeout (float): seconds that connecting to the server, and each read from it, may take before the
            download fails with :class:`DownloadError`; not a limit on the whole download. Defaults to 60.

    Returns:
        str: the absolute path of the checkpoint file.

    Raises:
        FileNotFoundError: a local path (or a file in a folder mirror) does not exist.
        DownloadError: offline, HTTP error or interrupted download (nothing is left under the final name).
        ChecksumError: the downloaded or cached file does not match its name (it is deleted).
    """
    if not is_url(source):
        path = osp.abspath(osp.expanduser(source))
        if not osp.isfile(path):
            raise FileNotFoundError(f'Checkpoint {source} does not exist; pass an existing file, a URL or a '
                                    'model-zoo name')
        verify_sha256(path, expected_sha256_prefix(path) if check_hash else None, source, remove=False)
        return path

    prefix = expected_sha256_prefix(urllib.parse.urlparse(source).path) if check_hash else None
    location = mirror_location(source)
    if location.startswith('file://'):
        location = urllib.request.url2pathname(urllib.parse.urlparse(location).path)
    if not is_url(location):  # a folder mirror: use the file in place, never delete it
        if not osp.isfile(location):
            if location == urllib.request.url2pathname(urllib.parse.urlparse(source).path):
                raise FileNotFoundError(f'Checkpoint {source} does not exist')
            raise FileNotFoundError(f'${MIRROR_ENV} points at a folder, but it lacks {location} (the mirror of '
                                    f'{source}); copy the file there or unset ${MIRROR_ENV}')
        verify_sha256(location, prefix, source, remove=False)
        return location

    dst = osp.join(cache_dir(), osp.basename(urllib.parse.urlparse(source).path))
    if osp.isfile(dst):
        verify_sha256(dst, prefix, source)
        return dst
    _stream_to(location, source, dst, prefix, progress, timeout)
    return dst


def load_from_url_weights_only(filename: str, map_location=None, model_dir=None, progress: bool = True):
    """mmengine ``CheckpointLoader`` scheme for ``http://`` / ``https://`` checkpoints.

    mmengine's own URL loader ends in a plain ``torch.load``, which under torch >= 2.6 refuses every mmengine and
    OpenMMLab checkpoint (numpy and ``HistoryBuffer`` entries) — e.g. mmpretrain's linear-evaluation configs, whose
    ``init_cfg=dict(type='Pretrained', checkpoint='https://download.openmmlab.com/...')`` names a published file.
    Here such a URL goes through :func:`fetch_checkpoint` (``$MMSIMCLR_MIRROR``, cache, sha256 check) and is read
    weights-only like a local file. ``model_dir`` (mmengine's cache argument) is ignored: the cache is
    :func:`cache_dir`.
    """
    path = fetch_checkpoint(filename, progress=progress)
    return safe_torch_load(path, map_location=map_location, name=f'{path} (from {filename})')


def register_url_checkpoint_loader() -> None:
    """Install :func:`load_from_url_weights_only` for http(s) URLs in mmengine (idempotent)."""
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=load_from_url_weights_only, force=True)
