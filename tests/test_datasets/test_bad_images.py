"""Bad files in an image-folder dataset: convertible images become RGB, unreadable ones are skipped (and named in
the log) or raise an error naming the file; an empty or missing folder stops training before it starts."""
import logging
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from PIL import Image

from mmsimclr.datasets.transforms.load_image_color import BadImageError, LoadImageColor, jpeg_is_truncated
from mmsimclr.registry import DATASETS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')
RGB = (200, 40, 90)


def _solid(mode, size=(24, 20)):
    return Image.new('RGB', size, RGB).convert(mode)


def _write_images(folder):
    """Convertible files -> expected RGB colour (None: only the shape is checked); unreadable files."""
    os.makedirs(folder, exist_ok=True)
    good = {}
    _solid('RGB').save(osp.join(folder, 'rgb.jpg'), quality=95)
    good['rgb.jpg'] = RGB
    _solid('L').save(osp.join(folder, 'gray.png'))
    gray = _solid('L').getpixel((0, 0))
    good['gray.png'] = (gray, gray, gray)
    rgba = _solid('RGBA')
    rgba.putalpha(128)
    rgba.save(osp.join(folder, 'rgba.png'))
    good['rgba.png'] = RGB
    _solid('CMYK').save(osp.join(folder, 'cmyk.jpg'), quality=95)
    good['cmyk.jpg'] = None  # CMYK JPEG colours depend on the decoder's inversion convention
    _solid('RGB').quantize(colors=4).save(osp.join(folder, 'palette.png'))
    good['palette.png'] = RGB
    Image.fromarray(np.full((20, 24), 40000, np.uint16)).save(osp.join(folder, 'sixteen.png'))
    good['sixteen.png'] = (156, 156, 156)  # 40000 / 257
    Image.new('RGB', (1, 1), RGB).save(osp.join(folder, 'one.png'))
    good['one.png'] = RGB

    bad = []
    full = osp.join(folder, 'rgb.jpg')
    with open(full, 'rb') as f:
        data = f.read()
    for name, content in (('truncated.jpg', data[:len(data) * 2 // 3]), ('empty.jpg', b''),
                          ('text.jpg', b'this is not an image\n' * 20), ('text.png', b'\x89PNG garbage')):
        with open(osp.join(folder, name), 'wb') as f:
            f.write(content)
        bad.append(name)
    return good, bad


@pytest.fixture
def log_lines():
    """Messages of mmengine's current logger during the test."""
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.fixture
def images(tmp_path):
    folder = str(tmp_path / 'data' / 'train' / 'class0')
    good, bad = _write_images(folder)
    return str(tmp_path / 'data'), folder, good, bad


def test_convertible_images_become_rgb(images):
    _, folder, good, _ = images
    load = LoadImageColor(channel_order='rgb', on_bad_image='raise')
    for name, colour in good.items():
        img = load(dict(img_path=osp.join(folder, name)))['img']
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
        if colour is not None:
            assert np.abs(img.astype(int) - colour).max() <= 6, (name, img[0, 0])


def test_unreadable_images_are_skipped_and_named(images, log_lines):
    _, folder, _, bad = images
    load = LoadImageColor()
    for name in bad:
        assert load(dict(img_path=osp.join(folder, name))) is None, name
    log = '\n'.join(log_lines)
    for name in bad:
        assert f'Skipped unreadable image {osp.join(folder, name)}' in log
    assert f'{len(bad)} image(s) skipped so far' in log and load.skipped == len(bad)


def test_raise_mode_names_the_file(images):
    _, folder, _, bad = images
    for name in bad:
        path = osp.join(folder, name)
        with pytest.raises(BadImageError, match=path.replace('.', r'\.')):
            LoadImageColor(on_bad_image='raise')(dict(img_path=path))
    with pytest.raises(BadImageError, match='missing.jpg'):
        LoadImageColor(on_bad_image='raise')(dict(img_path=osp.join(folder, 'missing.jpg')))


def test_truncation_detector_allows_trailers(images):
    _, folder, _, _ = images
    with open(osp.join(folder, 'rgb.jpg'), 'rb') as f:
        data = f.read()
    assert not jpeg_is_truncated(data) and not jpeg_is_truncated(data + b'camera trailer \xff\xda junk\xff\xd9')
    assert jpeg_is_truncated(data[:-2]) and jpeg_is_truncated(data[:len(data) // 2])


def test_training_pipeline_serves_every_index(images, log_lines):
    """The tiny config's dataset and pipeline on a folder with bad files: every index yields two 32x32 views
    (bad files are replaced by other samples), and each bad file is named."""
    root, folder, good, bad = images
    cfg = Config.fromfile(TINY)
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=root))
    assert len(dataset) == len(good) + len(bad)
    for i in range(len(dataset)):
        views = dataset[i]['inputs']
        assert len(views) == 2 and all(tuple(v.shape) == (3, 32, 32) for v in views)
    assert any(osp.join(folder, name) in line for name in bad for line in log_lines)


@pytest.mark.parametrize('case', ['missing', 'empty'])
def test_missing_or_empty_folder_stops_before_training(tmp_path, case):
    from tools.train import main
    root = tmp_path / 'data'
    if case == 'empty':
        (root / 'train' / 'class0').mkdir(parents=True)
    with pytest.raises(SystemExit) as info:
        main([TINY, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
              f'train_dataloader.dataset.data_root={root}'])
    message = str(info.value)
    assert str(root) in message and 'train_dataloader.dataset' in message
    assert not (tmp_path / 'work').exists()  # stopped before the runner made its work dir
