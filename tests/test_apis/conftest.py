"""Fixtures for the API tests: a local HTTP checkpoint server, an isolated cache, test model-zoo entries."""
import hashlib
import http.server
import io
import os.path as osp
import threading
from collections import Counter

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LINEAR_CONFIG = osp.join(REPO, 'configs/benchmarks/resnet50_simclr-200e-pre_8xb512-linear-coslr-90e_in1k.py')
SIMCLR_CONFIG = osp.join(REPO, 'configs/simclr_r50_16xb256-coslr-200e_in1k.py')
FAVOURED = 207  # the test classifier's head is biased towards this class, so loaded weights are visible


def sha8(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def to_bytes(obj) -> bytes:
    """``torch.save`` into memory."""
    import torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class CheckpointServer:
    """Serves in-memory files on 127.0.0.1 (``add``), counts GET requests per path, and can cut a transfer off
    halfway (``drop``: headers announce the full length, then the connection closes after half the bytes)."""

    def __init__(self):
        self.files = {}
        self.dropping = set()
        self.requests = Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.requests[self.path] += 1
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                if self.path in server.dropping:
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.base = f'http://127.0.0.1:{self.httpd.server_address[1]}/'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, data: bytes, drop: bool = False) -> None:
        self.files['/' + path.lstrip('/')] = data
        if drop:
            self.dropping.add('/' + path.lstrip('/'))

    def count(self, path: str) -> int:
        return self.requests['/' + path.lstrip('/')]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = CheckpointServer()
    yield srv
    srv.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder (MMSIMCLR_CACHE) and no mirror."""
    folder = tmp_path / 'cache'
    monkeypatch.setenv('MMSIMCLR_CACHE', str(folder))
    monkeypatch.delenv('MMSIMCLR_MIRROR', raising=False)
    return folder


@pytest.fixture
def mirrored(server, cache, monkeypatch):
    """The server stands in for https://download.openmmlab.com/ (MMSIMCLR_MIRROR)."""
    monkeypatch.setenv('MMSIMCLR_MIRROR', server.base)
    return server


@pytest.fixture
def zoo_entry():
    """``zoo_entry(name, config, url)`` registers a model-zoo entry for the test only."""
    from mmsimclr.apis import register_model, unregister_model
    names = []

    def register(name, config, weights):
        names.append(name)
        return register_model(name, config, weights, force=True)

    yield register
    for name in names:
        unregister_model(name)


@pytest.fixture(scope='session')
def linear_ckpt():
    """Bytes of a checkpoint shaped like OpenMMLab's linear-eval ones ({'state_dict', 'meta'}): the ResNet-50
    classifier of our linear config with random weights, its head biased towards class ``FAVOURED``."""
    import numpy as np
    from mmsimclr.apis import get_model
    model = get_model(LINEAR_CONFIG, pretrained=False, device='cpu')
    state_dict = model.state_dict()
    state_dict['head.fc.bias'][FAVOURED] = 100.0
    return to_bytes({'state_dict': state_dict, 'meta': {'epoch': 90, 'mmengine_version': '0.10.7',
                                                        'seed': np.int64(0)}})
