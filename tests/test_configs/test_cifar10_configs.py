"""The CIFAR-10 recipe configs build (model + pipeline); the data root override and the other data source (its own
base file) work."""
import os.path as osp

import pytest
import torch

EPOCHS = (200, 800, 1000)


def _cfg(repo_root, name):
    from mmengine.config import Config
    return Config.fromfile(osp.join(repo_root, 'configs', name))


@pytest.mark.parametrize('epochs', EPOCHS)
def test_recipe_config(repo_root, epochs):
    cfg = _cfg(repo_root, f'simclr_r18_1xb512-coslr-{epochs}e_cifar10.py')
    assert cfg.train_dataloader.batch_size == 512
    assert cfg.train_cfg.max_epochs == epochs
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.end, cosine.type, cosine.begin, cosine.end) == \
        ('LinearLR', 10, 'CosineAnnealingLR', 10, epochs)
    assert cfg.optim_wrapper.optimizer.type == 'LARS' and cfg.optim_wrapper.optimizer.lr == 1.0
    assert cfg.model.head.temperature == 0.5
    views = cfg.train_dataloader.dataset.pipeline[1].transforms[0]
    assert not any('Blur' in t['type'] for t in views)  # CIFAR-10: no blur
    hook = [h for h in cfg.custom_hooks if h.type == 'KNNMonitorHook'][0]
    assert (hook.k, hook.temperature) == (200, 0.1)


def test_demo_views_differ_from_the_recipe_only_in_the_crop(repo_root):
    """The demo recipe takes the CIFAR-10 views from their base and only narrows the crop to 20-100%."""
    recipe = _cfg(repo_root, 'simclr_r18_1xb512-coslr-200e_cifar10.py').train_dataloader.dataset.pipeline
    demo = _cfg(repo_root, 'simclr_r18-w8_1xb128-coslr-26e_cifar10-demo.py').train_dataloader.dataset.pipeline
    (crop, *rest), (demo_crop, *demo_rest) = recipe[1].transforms[0], demo[1].transforms[0]
    assert crop.scale == (0.08, 1.0) and demo_crop.scale == (0.2, 1.0)
    assert dict(demo_crop, scale=crop.scale) == crop and demo_rest == rest
    assert [demo[0], dict(demo[1], transforms=None), demo[2]] == [recipe[0], dict(recipe[1], transforms=None),
                                                                  recipe[2]]


def test_recipe_model_has_cifar_stem(repo_root):
    from mmsimclr.registry import MODELS
    model = MODELS.build(_cfg(repo_root, 'simclr_r18_1xb512-coslr-200e_cifar10.py').model)
    assert type(model.backbone).__name__ == 'ResNet_CIFAR'
    conv1 = model.backbone.conv1
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.backbone.modules())
    out = model.embed(torch.randn(2, 3, 32, 32))
    assert out['feat'].shape == (2, 512) and out['proj'].shape == (2, 128)


def test_folder_source_with_data_root_override(repo_root, tiny_data):
    from mmsimclr.evaluation.embedding import derive_dataset_cfg
    from mmsimclr.registry import DATASETS
    cfg = _cfg(repo_root, 'simclr_r18_1xb512-coslr-200e_cifar10.py')
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': tiny_data})  # what --cfg-options does
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(ds) == 64
    item = ds[0]
    assert len(item['inputs']) == 2 and all(v.shape == (3, 32, 32) for v in item['inputs'])
    test = DATASETS.build(derive_dataset_cfg(cfg.train_dataloader.dataset, 'test'))  # what the kNN hook reads
    assert len(test) == 64 and test.get_data_info(0)['img_path'].startswith(osp.join(tiny_data, 'test'))
    assert test[0]['inputs'].shape == (3, 32, 32)


def test_mmpretrain_cifar10_source(repo_root):
    """mmpretrain's CIFAR10 (pickles) is selected by inheriting its base: same views, loader and kNN monitor."""
    from mmsimclr.evaluation.embedding import derive_dataset_cfg
    folder = _cfg(repo_root, '_base_/datasets/cifar10_bs512_simclr.py')
    pickle = _cfg(repo_root, '_base_/datasets/cifar10_bs512_simclr_pickle.py')
    ds = pickle.train_dataloader.dataset
    assert (ds.type, ds.split, ds.data_root) == ('CIFAR10', 'train', 'data/cifar10/')
    assert [t['type'] for t in ds.pipeline] == ['MultiView', 'PackInputs']  # images come from the pickles
    assert ds.pipeline[0].transforms == [folder.view_pipeline]
    assert derive_dataset_cfg(ds, 'test')['split'] == 'test'
    for key in ('batch_size', 'num_workers', 'drop_last', 'sampler'):
        assert pickle.train_dataloader[key] == folder.train_dataloader[key]
    assert pickle.custom_hooks == folder.custom_hooks
    lin = _cfg(repo_root, '_base_/datasets/cifar10_bs512_linear_pickle.py')
    assert (lin.train_dataloader.dataset.type, lin.test_dataloader.dataset.split) == ('CIFAR10', 'test')
    assert [t.type for t in lin.test_dataloader.dataset.pipeline] == ['PackInputs']
    folder_lin = _cfg(repo_root, '_base_/datasets/cifar10_bs512_linear.py')
    assert lin.train_dataloader.dataset.pipeline == folder_lin.train_dataloader.dataset.pipeline[1:]  # no loading


def test_batchaug_parts_set_the_model_preprocessor(repo_root, tmp_path):
    """A top-level config that lists the two _batchaug parts gets the batched preprocessor (the CIFAR views) with the
    model base's normalisation, and the decode-only loader."""
    from mmsimclr.registry import MODELS
    base = osp.join(repo_root, 'configs', '_base_')
    path = tmp_path / 'simclr_batchaug.py'
    path.write_text(f"_base_ = [{base + '/models/simclr_r18_cifar_batchaug.py'!r}, "
                    f"{base + '/datasets/cifar10_bs512_simclr_batchaug.py'!r}, {base + '/default_runtime.py'!r}]\n")
    from mmengine.config import Config
    cfg = Config.fromfile(str(path))
    plain = _cfg(repo_root, '_base_/models/simclr_r18_cifar.py').model.data_preprocessor
    pre = cfg.model.data_preprocessor
    assert pre.type == 'SimCLRDataPreprocessor' and (pre.size, pre.strength, pre.blur_prob) == (32, 0.5, 0.0)
    assert (pre.mean, pre.std, pre.to_rgb) == (plain.mean, plain.std, plain.to_rgb)
    assert [t.type for t in cfg.train_dataloader.dataset.pipeline] == ['LoadImageColor', 'Resize', 'PackInputs']
    model = MODELS.build(cfg.model)
    assert type(model.data_preprocessor).__name__ == 'SimCLRDataPreprocessor'
    tiny = _cfg(repo_root, 'simclr_r18_1xb16-coslr-2e_tiny_batchaug.py')  # the same two settings on the tiny run
    assert tiny.model.data_preprocessor == pre
    assert tiny.train_dataloader.dataset.pipeline == cfg.train_dataloader.dataset.pipeline


def test_linear_config_builds(repo_root, tiny_data):
    from mmsimclr.registry import DATASETS, MODELS
    cfg = _cfg(repo_root, 'benchmarks/resnet18_simclr-cifar-pre_1xb512-linear-coslr-100e_cifar10.py')
    assert cfg.model.backbone.init_cfg.checkpoint.endswith('epoch_200.pth')
    model = MODELS.build(cfg.model)
    assert model.backbone.frozen_stages == 4 and model.head.fc.in_features == 512
    assert all(not p.requires_grad for p in model.backbone.parameters())
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        ds = DATASETS.build(dict(loader.dataset, data_root=tiny_data))
        assert len(ds) == 64 and ds[0]['inputs'].shape == (3, 32, 32)
