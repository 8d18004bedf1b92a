"""tools/analysis/knn_eval.py and visualize_tsne.py on a tiny checkpoint; checkpoint loading into other models."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

SMALL = ['model.backbone.stem_channels=8', 'model.backbone.base_channels=8', 'model.neck.in_channels=64',
         'model.neck.hid_channels=32', 'model.neck.out_channels=16']


@pytest.fixture(scope='module')
def tiny_ckpt(repo_root, tmp_path_factory):
    from mmengine.config import Config

    from mmsimclr.registry import MODELS
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py'))
    cfg.merge_from_dict({k: int(v) for k, v in (o.split('=') for o in SMALL)})
    torch.manual_seed(3)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():  # weights no initialiser produces, so loading is observable
        for p in model.parameters():
            p.add_(0.01)
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), path)
    return cfg, path, model.state_dict()


def test_get_model_backbone_only_restores_weights_and_rejects_foreign(tiny_ckpt, tmp_path):
    """The evaluation tools load through get_model(cfg, path, strict=False): the weights are the file's, and a
    checkpoint of another architecture is refused."""
    from mmsimclr.apis import get_model
    cfg, path, state = tiny_ckpt
    model = get_model(cfg, pretrained=path, device='cpu', strict=False)
    assert not model.training
    for k, v in state.items():
        torch.testing.assert_close(model.state_dict()[k], v)
    foreign = str(tmp_path / 'foreign.pth')
    torch.save(dict(state_dict={'fc.weight': torch.zeros(2, 2)}), foreign)
    with pytest.raises(ValueError, match='no weight for the backbone'):
        get_model(cfg, pretrained=foreign, device='cpu', strict=False)
    partial = str(tmp_path / 'partial.pth')
    torch.save(dict(state_dict={k: v for k, v in state.items() if not k.startswith('backbone.layer4')}), partial)
    with pytest.raises(ValueError, match='lacks .* backbone weights'):
        get_model(cfg, pretrained=partial, device='cpu', strict=False)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        get_model(cfg, pretrained=str(tmp_path / 'missing.pth'), device='cpu', strict=False)


def test_simclr_checkpoint_into_linear_classifier(repo_root, tmp_path):
    """A SimCLR checkpoint (ours or OpenMMLab's: backbone.*, neck.*) feeds the linear-evaluation model; the head
    keeps its initialisation, and strict loading (the default) says that the head is missing."""
    from mmengine.config import Config

    from mmsimclr.apis import get_model
    from mmsimclr.registry import MODELS
    pre = Config.fromfile(osp.join(repo_root, 'configs', 'simclr_r18_1xb512-coslr-200e_cifar10.py'))
    simclr = MODELS.build(pre.model)
    path = str(tmp_path / 'simclr.pth')
    torch.save(dict(state_dict=simclr.state_dict()), path)
    lin = Config.fromfile(osp.join(
        repo_root, 'configs', 'benchmarks', 'resnet18_simclr-cifar-pre_1xb512-linear-coslr-100e_cifar10.py'))
    model = get_model(lin, pretrained=path, device='cpu', strict=False)
    assert type(model).__name__ == 'ImageClassifier'
    for k, v in model.backbone.state_dict().items():
        torch.testing.assert_close(v, simclr.state_dict()['backbone.' + k])
    with pytest.raises(ValueError, match='head.fc.weight'):
        get_model(lin, pretrained=path, device='cpu')


def test_knn_eval_tool(repo_root, tiny_data, tiny_ckpt, tmp_path):
    from tools.analysis.knn_eval import main
    _, path, _ = tiny_ckpt
    out = str(tmp_path / 'knn.json')
    config = osp.join(repo_root, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')
    common = ['--data-root', tiny_data, '--k', '10', '--workers', '0', '--batch-size', '32', '--no-progress',
              '--cfg-options'] + SMALL
    result = main([config, path, '--out', out] + common)
    saved = json.load(open(out))
    assert saved['knn_top1'] == pytest.approx(result['knn_top1'])
    assert saved['num_train'] == 64 and saved['num_test'] == 64 and saved['k'] == 10
    assert 0 <= saved['knn_top1'] <= 100 and abs(saved['knn_top1'] * 0.64 - round(saved['knn_top1'] * 0.64)) < 1e-6
    sub = main([config, path, '--num-train', '20', '--num-test', '8'] + common)
    assert (sub['num_train'], sub['num_test']) == (20, 8)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        main([config, path, '--data-root', str(tmp_path / 'nothing'), '--no-progress', '--cfg-options'] + SMALL)


def test_visualize_tsne_writes_png(repo_root, tiny_data, tiny_ckpt, tmp_path):
    from PIL import Image

    from tools.analysis.visualize_tsne import main
    _, path, _ = tiny_ckpt
    out = str(tmp_path / 'plots' / 'tsne.png')
    main([osp.join(repo_root, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py'), path, '--out', out,
          '--data-root', tiny_data, '--num', '40', '--workers', '0', '--cfg-options'] + SMALL)
    with Image.open(out) as img:
        assert img.format == 'PNG'
        img.verify()
    with Image.open(out) as img:
        assert img.size[0] > 300 and img.size[1] > 300
        assert len(set(img.convert('RGB').getdata())) > 10  # something was drawn
    data = np.load(osp.splitext(out)[0] + '.npz')
    assert data['points'].shape == (40, 2) and np.isfinite(data['points']).all()
    assert set(data['labels'].tolist()) <= {0, 1, 2, 3} and list(data['classes']) == [f'class{i}' for i in range(4)]
