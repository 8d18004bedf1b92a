"""End to end: inference_model by model-zoo name downloads (from a local server standing in for OpenMMLab's),
verifies, caches and predicts; unsafe checkpoints are refused; SimCLR models give embeddings."""
import os

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
from PIL import Image

import mmsimclr
from mmsimclr.apis import get_model, inference_model, extract_features
from mmsimclr.apis.download import ChecksumError
from mmsimclr.apis.images import ImagePreparer
from mmsimclr.utils.checkpoint import UnsafeCheckpointError

from .conftest import FAVOURED, LINEAR_CONFIG, REPO, SIMCLR_CONFIG, sha8, to_bytes as _to_bytes

OFFICIAL = 'https://download.openmmlab.com/'


@pytest.fixture
def image(tmp_path):
    path = tmp_path / 'bird.JPEG'
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (180, 240, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_inference_by_name_downloads_once_and_predicts(mirrored, cache, zoo_entry, linear_ckpt, image):
    rel = f'mmselfsup/1.x/simclr/test/linear-{sha8(linear_ckpt)}.pth'
    mirrored.add(rel, linear_ckpt)
    zoo_entry('test-linear', LINEAR_CONFIG, OFFICIAL + rel)

    result = mmsimclr.inference_model('test-linear', image)
    assert mirrored.count(rel) == 1
    assert (cache / f'linear-{sha8(linear_ckpt)}.pth').read_bytes() == linear_ckpt
    assert result['pred_label'] == FAVOURED and 0 <= result['pred_label'] < 1000
    assert result['pred_class'] == IMAGENET_CATEGORIES[FAVOURED]
    assert result['pred_scores'].shape == (1000,)
    assert result['pred_score'] == pytest.approx(float(result['pred_scores'].max()))
    assert result['pred_scores'].sum() == pytest.approx(1.0, abs=1e-4)

    again = inference_model('test-linear', [image, Image.open(image)], device='cpu')
    assert mirrored.count(rel) == 1  # served from the cache
    assert [r['pred_label'] for r in again] == [FAVOURED, FAVOURED]
    # a PIL image and the same file on disk give the same prediction
    np.testing.assert_allclose(again[0]['pred_scores'], again[1]['pred_scores'], atol=1e-5)


def test_tampered_weights_are_refused_before_building(mirrored, cache, zoo_entry):
    rel = 'test/linear-0badc0de.pth'
    mirrored.add(rel, b'not the published bytes')
    zoo_entry('test-tampered', LINEAR_CONFIG, OFFICIAL + rel)
    with pytest.raises(ChecksumError, match='0badc0de'):
        get_model('test-tampered', pretrained=True)
    assert os.listdir(cache) == []


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_checkpoint_with_pickled_callable_is_refused(mirrored, cache, zoo_entry, tmp_path):
    marker = tmp_path / 'code-ran'
    data = _to_bytes({'state_dict': {'w': torch.zeros(1)}, 'meta': {'hook': _RunsCode(marker)}})
    rel = f'test/evil-{sha8(data)}.pth'
    mirrored.add(rel, data)
    zoo_entry('test-evil', LINEAR_CONFIG, OFFICIAL + rel)
    with pytest.raises(UnsafeCheckpointError, match='Refused'):
        inference_model('test-evil', np.zeros((32, 32, 3), np.uint8))
    assert not marker.exists()


def test_checkpoint_for_another_model_is_rejected(tmp_path):
    path = tmp_path / 'partial.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(64, 3, 7, 7)}}, path)
    with pytest.raises(ValueError, match='does not fit config'):
        get_model(SIMCLR_CONFIG, pretrained=str(path), device='cpu')


def test_simclr_model_returns_embeddings(tmp_path):
    built = get_model(SIMCLR_CONFIG, pretrained=False, device='cpu')
    path = tmp_path / 'simclr.pth'
    torch.save({'state_dict': built.state_dict(), 'meta': {'epoch': 200}}, path)
    loaded = get_model('simclr_resnet50_16xb256-coslr-200e_in1k', pretrained=str(path), device='cpu')
    assert loaded.zoo_name == 'simclr_resnet50_16xb256-coslr-200e_in1k'

    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (240, 260, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (230, 300), dtype=np.uint8)
    features = extract_features(loaded, [bgr, gray], batch_size=2, progress=False)
    assert features['feat'].shape == (2, 2048) and features['proj'].shape == (2, 128)
    assert features['paths'] == [None, None] and features['indices'].tolist() == [0, 1]  # in-memory images

    # colour conventions: a BGR array, the RGB PIL image and the (lossless) file all give the same embedding
    rgb_pil = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
    rgb_pil.save(tmp_path / 'img.png')
    by_kind = inference_model(loaded, [bgr, rgb_pil, str(tmp_path / 'img.png')])
    assert by_kind[0]['feat'].shape == (2048, ) and by_kind[0]['proj'].shape == (128, )
    for other in by_kind[1:] + [{'feat': features['feat'][0]}]:
        np.testing.assert_allclose(other['feat'], by_kind[0]['feat'], rtol=1e-4, atol=1e-5)
    swapped = inference_model(loaded, np.ascontiguousarray(bgr[:, :, ::-1]))
    assert not np.allclose(swapped['feat'], by_kind[0]['feat'], rtol=1e-4, atol=1e-5)

    # same weights, same embedding: the checkpoint was loaded, not re-initialised
    np.testing.assert_allclose(inference_model(built, bgr)['feat'], by_kind[0]['feat'], rtol=1e-4, atol=1e-5)


def test_bad_images_get_clear_errors(tmp_path):
    prepare = ImagePreparer(Config.fromfile(SIMCLR_CONFIG))
    assert tuple(prepare(np.zeros((300, 400), np.uint8))['inputs'].shape) == (3, 224, 224)
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        prepare(str(tmp_path / 'missing.jpg'))
    with pytest.raises(TypeError, match='uint8'):
        prepare(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        prepare(np.zeros((32, 32, 4), np.uint8))
    with pytest.raises(TypeError, match='Unsupported image type'):
        prepare(123)


@pytest.mark.parametrize('config, side', [('simclr_r18_1xb512-coslr-200e_cifar10.py', 32),
                                          ('simclr_r18-w8_1xb128-coslr-26e_cifar10-demo.py', 32),
                                          ('simclr_r50_16xb256-coslr-200e_in1k.py', 224)])
def test_pretraining_configs_evaluate_at_their_training_size(config, side):
    """An image of any size reaches a model at the side it was trained on: CIFAR models see 32x32 (they used to get
    ImageNet's 224 crop of an upscaled image: other features, ~50x the compute), ImageNet ones 224. The kNN monitor
    and the analysis tools derive their datasets with the same pipeline."""
    from mmsimclr.evaluation import eval_dataset_cfgs
    cfg = Config.fromfile(os.path.join(REPO, 'configs', config))
    prepare = ImagePreparer(cfg)
    rng = np.random.default_rng(3)
    for shape in ((300, 400, 3), (32, 32, 3), (20, 50, 3)):
        assert tuple(prepare(rng.integers(0, 256, shape, dtype=np.uint8))['inputs'].shape) == (3, side, side)
    for split in eval_dataset_cfgs(cfg).values():
        assert split['pipeline'] == cfg.test_pipeline


def test_folder_expands_to_its_sorted_image_files(tmp_path):
    from mmsimclr.apis.images import expand_images
    (tmp_path / 'sub').mkdir()
    for name in ('b.jpg', 'a.PNG', 'sub/c.jpeg', 'notes.txt'):
        (tmp_path / name).write_bytes(b'')
    assert expand_images(str(tmp_path)) == [str(tmp_path / n) for n in ('a.PNG', 'b.jpg', 'sub/c.jpeg')]
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no image files'):
        expand_images(str(tmp_path / 'empty'))


# ------------------------------------------------------------------------------------------ unreadable files
TINY_CONFIG = os.path.join(REPO, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')


@pytest.fixture(scope='module')
def tiny_model():
    return get_model(TINY_CONFIG, pretrained=False, device='cpu')


@pytest.fixture
def folder_with_bad_files(tmp_path):
    """a.jpg (good), b.jpg (0 bytes), c.png (good), d.jpg (not an image), e.jpg (JPEG cut off halfway)."""
    rng = np.random.default_rng(2)
    for name in ('a.jpg', 'c.png', 'full.jpg'):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / 'b.jpg').write_bytes(b'')
    (tmp_path / 'd.jpg').write_bytes(b'<html>not found</html>')
    full = (tmp_path / 'full.jpg').read_bytes()
    (tmp_path / 'e.jpg').write_bytes(full[:len(full) // 2])
    (tmp_path / 'full.jpg').unlink()
    return tmp_path


def test_extract_features_skips_unreadable_files_naming_them(tiny_model, folder_with_bad_files):
    folder = folder_with_bad_files
    with pytest.warns(UserWarning) as caught:
        out = extract_features(tiny_model, str(folder), batch_size=2, progress=False)
    messages = [str(w.message) for w in caught if 'Skipped unreadable image' in str(w.message)]
    assert len(messages) == 3
    assert messages[0].startswith(f'Skipped unreadable image {folder / "b.jpg"} (the file is empty (0 bytes))')
    assert messages[1].startswith(f'Skipped unreadable image {folder / "d.jpg"} (')
    assert messages[2].startswith(f'Skipped unreadable image {folder / "e.jpg"} (truncated JPEG')
    assert out['paths'] == [str(folder / 'a.jpg'), str(folder / 'c.png')]
    assert out['indices'].tolist() == [0, 2]  # positions in the folder's sorted file list
    assert out['feat'].shape == (2, 64) and out['proj'].shape[0] == 2
    # each row is its own file's embedding
    for row, path in enumerate(out['paths']):
        alone = extract_features(tiny_model, [path], progress=False)
        np.testing.assert_allclose(out['feat'][row], alone['feat'][0], rtol=1e-4, atol=1e-5)


def test_extract_features_can_raise_on_an_unreadable_file(tiny_model, folder_with_bad_files):
    from mmsimclr.datasets.transforms.load_image_color import BadImageError
    with pytest.raises(BadImageError) as err:
        extract_features(tiny_model, str(folder_with_bad_files), progress=False, on_bad_image='raise')
    assert str(err.value) == (f'Cannot read image {folder_with_bad_files / "b.jpg"}: the file is empty (0 bytes). '
                              'Remove or replace the file.')
    with pytest.raises(ValueError, match='on_bad_image'):
        extract_features(tiny_model, str(folder_with_bad_files), progress=False, on_bad_image='ignore')


def test_undecodable_file_is_named_where_opencv_would_not(tiny_model, folder_with_bad_files):
    from mmsimclr.datasets.transforms.load_image_color import BadImageError
    bad = str(folder_with_bad_files / 'd.jpg')
    with pytest.raises(BadImageError, match=f'Cannot read image {bad}: '):
        inference_model(tiny_model, bad)
    with pytest.warns(UserWarning, match='Skipped unreadable image'), \
            pytest.raises(ValueError, match=r'None of the 2 image\(s\) could be read'):
        extract_features(tiny_model, [bad, str(folder_with_bad_files / 'b.jpg')], progress=False)
