"""get_model's ``pretrained`` default: ``False`` as mmpretrain's (nothing downloaded); ``True`` and
``inference_model(name, ...)`` use the published weights."""
import inspect
import os.path as osp

import numpy as np
import pytest
import torch

from mmsimclr.apis import get_model, inference_model

from .conftest import REPO, sha8, to_bytes

TINY = osp.join(REPO, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')
OFFICIAL = 'https://download.openmmlab.com/'


def test_default_matches_mmpretrain():
    from mmpretrain.apis import get_model as mmpretrain_get_model
    ours = inspect.signature(get_model).parameters['pretrained'].default
    theirs = inspect.signature(mmpretrain_get_model).parameters['pretrained'].default
    assert ours is theirs is False


@pytest.fixture(scope='module')
def marked_ckpt():
    """A checkpoint for the tiny config whose first projection layer is all 0.5 (a random init never is)."""
    state_dict = get_model(TINY, pretrained=False, device='cpu').state_dict()
    state_dict['neck.fc0.weight'].fill_(0.5)
    return to_bytes({'state_dict': state_dict, 'meta': {'epoch': 2}})


def test_by_name_without_pretrained_downloads_nothing(mirrored, cache, zoo_entry, marked_ckpt):
    rel = f'test/tiny-{sha8(marked_ckpt)}.pth'
    mirrored.add(rel, marked_ckpt)
    zoo_entry('test-tiny', TINY, OFFICIAL + rel)

    model = get_model('test-tiny', device='cpu')
    assert mirrored.count(rel) == 0 and not (cache.exists() and any(cache.iterdir()))
    assert model.zoo_name == 'test-tiny' and not model.training
    assert not torch.all(model.neck.fc0.weight == 0.5)  # random initialisation

    published = get_model('test-tiny', pretrained=True, device='cpu')
    assert mirrored.count(rel) == 1
    assert torch.all(published.neck.fc0.weight == 0.5)


def test_inference_by_name_uses_the_published_weights(mirrored, cache, zoo_entry, marked_ckpt):
    rel = f'test/tiny-{sha8(marked_ckpt)}.pth'
    mirrored.add(rel, marked_ckpt)
    zoo_entry('test-tiny', TINY, OFFICIAL + rel)
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)

    result = inference_model('test-tiny', image, device='cpu')
    assert mirrored.count(rel) == 1
    published = get_model('test-tiny', pretrained=True, device='cpu')  # from the cache now
    assert mirrored.count(rel) == 1
    assert torch.all(published.neck.fc0.weight == 0.5)
    expected = inference_model(published, image)
    np.testing.assert_allclose(np.asarray(result['proj']), np.asarray(expected['proj']), rtol=1e-5, atol=1e-6)
    random = inference_model(get_model('test-tiny', device='cpu'), image)
    assert not np.allclose(np.asarray(random['proj']), np.asarray(expected['proj']), atol=1e-3)
