"""Shared fixtures: registries populated, tiny data made on the fly."""
import os
import os.path as osp
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

# one intra-op thread per pytest-xdist worker (two workers share the 2-core CI machine), two in a serial run
os.environ.setdefault('OMP_NUM_THREADS', '1' if os.environ.get('PYTEST_XDIST_WORKER') else '2')


@pytest.fixture(scope='session', autouse=True)
def _registered():
    from mmsimclr.utils import register_all_modules
    register_all_modules(init_default_scope=True)


@pytest.fixture(scope='session')
def repo_root():
    return REPO


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """An image folder ``train/<class>/*.jpg``, ``test/<class>/*.jpg``: 4 classes x 16 images of 32x32."""
    from tools.make_tiny_dataset import make_tiny_dataset
    return make_tiny_dataset(str(tmp_path_factory.mktemp('tiny_data')))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group markers
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``make test`` runs ``-n 2 --dist loadgroup``) the tests that start a process group of two
    or more ranks (marker ``distributed``) go to one worker, one at a time: two such groups at once would be four busy
    processes on a 2-core machine, and their free-port picks could meet. The tests of a module marked
    ``shared_setup`` stay together on one worker, so that their module-scoped fixture (a training run, an install)
    is made once. Every other test goes to whichever worker is free."""
    for item in items:
        if item.get_closest_marker('distributed'):
            item.add_marker(pytest.mark.xdist_group('distributed'))
        elif item.get_closest_marker('shared_setup'):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split('::')[0]))


def pytest_configure(config):
    """pytest 9.2 keeps node ids in a structured form; pytest-xdist 3.8 tags a grouped test by rewriting the old
    string id, so under pytest 9.2 ``--dist loadgroup`` ignores every group without a word and the process-group
    tests run side by side. Stop with the fix instead (measured: pytest 9.1.1, 9.0.3 and 8.4.2 group correctly)."""
    if config.getoption('dist', None) == 'loadgroup' and tuple(map(int, pytest.__version__.split('.')[:2])) >= (9, 2):
        raise pytest.UsageError(f'pytest {pytest.__version__} with pytest-xdist ignores --dist loadgroup\'s groups: '
                                "pip install -r requirements/tests.txt (pytest<9.2), or run without -n")


def make_mixed_image_folder(root: str) -> dict:
    """An unlabelled folder as users have them: images at the root and nested (``a/``, ``a/b/``, ``c/``); jpg, JPEG,
    png, PNG, webp, bmp and tif; colour, grayscale, RGBA and 16-bit; sizes from 24 to 64 pixels. Ignored: a hidden
    file, a hidden folder, a text file and a ``.bak``. One corrupt ``.jpg``. Returns ``{'images': relative paths of
    the readable images (sorted), 'broken': [the corrupt one]}``."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for sub in ('a/b', 'c', '.cache'):
        os.makedirs(osp.join(root, sub), exist_ok=True)

    def rgb(h, w):
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))

    images = {}
    for i in range(6):
        images[f'root_{i}.jpg'] = rgb(32 + i, 40)
    for i in range(5):
        images[f'a/gray_{i}.PNG'] = Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8))
        images[f'a/b/rgba_{i}.png'] = Image.fromarray(rng.integers(0, 256, (36, 30, 4), dtype=np.uint8))
        images[f'c/photo_{i}.JPEG'] = rgb(64, 48)
    images['c/deep16.tif'] = Image.fromarray(rng.integers(0, 65536, (30, 30), dtype=np.uint16))
    images['c/web.webp'] = rgb(24, 24)
    images['c/bitmap.bmp'] = rgb(26, 26)
    for rel, img in images.items():
        img.save(osp.join(root, rel))
    rgb(32, 32).save(osp.join(root, '.hidden.jpg'))
    rgb(32, 32).save(osp.join(root, '.cache', 'thumb.jpg'))
    with open(osp.join(root, 'notes.txt'), 'w') as f:
        f.write('not an image')
    rgb(32, 32).save(osp.join(root, 'c', 'old.jpg.bak'), format='JPEG')
    with open(osp.join(root, 'c', 'broken.jpg'), 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 this is not a JPEG')
    return dict(images=sorted(images), broken=['c/broken.jpg'])


@pytest.fixture(scope='session')
def mixed_image_folder(tmp_path_factory):
    """``(root, info)`` of :func:`make_mixed_image_folder` (24 readable images, 1 broken)."""
    root = str(tmp_path_factory.mktemp('mixed_images'))
    return root, make_mixed_image_folder(root)
