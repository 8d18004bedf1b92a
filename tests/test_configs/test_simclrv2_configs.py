"""SimCLRv2 training recipes (configs/simclrv2/): pretraining, fine-tuning from the first head layer on the 1% / 10%
label subsets, self-distillation. Every config passes ``check_config`` (types, name, data, model dry run) and holds
the paper's hyper-parameters; the 13 published architectures come from the documented override; LARS makes the
fine-tuning lr independent of the checkpoint's weight scale (v1 vs v2); and the three steps run one after the other
on tiny data (32 px): pretraining (R50 1x SK) writes the checkpoint that fine-tuning starts from, whose checkpoint
is the distillation teacher."""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmsimclr.models.backbones.simclrv2_arch import SIMCLRV2_ARCHS, SK_RATIO
from mmsimclr.registry import MODELS
from mmsimclr.utils.config_check import check_config
from tools.train import main as train

pytestmark = pytest.mark.shared_setup  # the chained runs share module fixtures: one xdist worker

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
V2 = osp.join(ROOT, 'configs', 'simclrv2')
PRE = {sk: osp.join(V2, f'simclrv2_r50-1x-sk{sk}_16xb256-coslr-800e_in1k.py') for sk in (0, 1)}
FT = {(sk, pct): osp.join(V2, f'resnet50-1x-sk{sk}_simclrv2-800e-pre_8xb128-finetune-{pct}pct-{ep}e_in1k.py')
      for sk in (0, 1) for pct, ep in ((1, 60), (10, 30))}
DISTILL = osp.join(V2, 'simclrv2-selfdistill-1pct_r50-1x-sk1_16xb256-coslr-400e_in1k.py')
CONFIGS = list(PRE.values()) + list(FT.values()) + [DISTILL]
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def name_of(path):
    return osp.basename(path)


# ------------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize('path', CONFIGS, ids=name_of)
def test_config_passes_check_config(path, tiny_imagenet):
    """Registered types, file name (GPUs x batch, epochs, auto_scale_lr base), data, model build + dry run."""
    file_cfg = Config.fromfile(path)
    cfg = Config.fromfile(path)
    cfg.merge_from_dict({f'{loader}.dataset.data_root': tiny_imagenet for loader in LOADERS if loader in cfg})
    check_config(cfg, path, file_cfg=file_cfg)
    assert cfg.default_scope == 'mmsimclr'
    assert max(s.get('end', cfg.train_cfg.max_epochs) for s in cfg.param_scheduler) == cfg.train_cfg.max_epochs


@pytest.mark.parametrize('sk', [0, 1])
def test_pretraining_recipe(sk):
    cfg = Config.fromfile(PRE[sk])
    backbone, neck = cfg.model.backbone, cfg.model.neck
    assert (backbone.type, backbone.depth, backbone.width_multiplier) == ('ResNetSK', 50, 1)
    assert backbone.sk_ratio == (SK_RATIO if sk else 0.0) and backbone.zero_init_residual
    assert (neck.type, neck.num_layers, neck.in_channels, neck.out_channels) == ('SimCLRv2Neck', 3, 2048, 128)
    assert neck.get('out_layer', -1) == -1 and neck.get('hid_channels') is None  # hidden = 2048 x width
    assert backbone.norm_cfg.type == neck.norm_cfg.type == 'GlobalBN'
    assert cfg.model.head.temperature == 0.1
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.momentum, opt.weight_decay) == ('LARS', 0.9, 1e-4)
    assert opt.lr == pytest.approx(0.1 * math.sqrt(16 * 256))  # 6.4
    assert cfg.auto_scale_lr == dict(base_batch_size=4096, rule='sqrt')
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.begin, warmup.end) == ('LinearLR', 0, 40)  # 5% of 800
    assert (cosine.type, cosine.begin, cosine.end, cosine.T_max) == ('CosineAnnealingLR', 40, 800, 760)
    assert cfg.train_dataloader.batch_size * 16 == 4096 and cfg.train_cfg.max_epochs == 800
    assert cfg.model.data_preprocessor.std == [255.] * 3  # TF inputs in [0, 1]


@pytest.mark.parametrize('sk,pct', list(FT), ids=[f'sk{sk}-{pct}pct' for sk, pct in FT])
def test_finetune_recipe(sk, pct):
    cfg = Config.fromfile(FT[(sk, pct)])
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.momentum, opt.weight_decay, opt.get('nesterov', False)) == ('LARS', 0.9, 0.0, False)
    # 0.005 x sqrt(1024) for the standard ResNet, 0.002 x sqrt(1024) for SK / wider ones
    assert opt.lr == pytest.approx((0.002 if sk else 0.005) * math.sqrt(1024))
    assert cfg.auto_scale_lr == dict(base_batch_size=1024, rule='sqrt')
    assert cfg.train_dataloader.batch_size * 8 == 1024
    assert cfg.train_cfg.max_epochs == {1: 60, 10: 30}[pct]
    assert [s.type for s in cfg.param_scheduler] == ['CosineAnnealingLR'], 'no warm-up'
    assert cfg.train_dataloader.dataset.ann_file == f'meta/train_{pct}percent.txt'
    model = cfg.model
    assert model.backbone.sk_ratio == (SK_RATIO if sk else 0.0) and model.backbone.frozen_stages == -1
    assert (model.neck.num_layers, model.neck.out_layer, model.head.in_channels) == (3, 1, 2048)
    assert model.backbone.init_cfg.prefix == 'backbone.' and model.neck.init_cfg.prefix == 'neck.'
    assert model.backbone.init_cfg.checkpoint == model.neck.init_cfg.checkpoint
    assert f'simclrv2_r50-1x-sk{sk}_16xb256' in model.backbone.init_cfg.checkpoint
    assert model.head.init_cfg == dict(type='Constant', layer='Linear', val=0)
    assert cfg.model_wrapper_cfg.find_unused_parameters  # the head's 2nd / 3rd layers get no gradient

    # LARS everywhere but BN, biases and the new classifier (TF: 'batch_normalization', 'bias', 'head_supervised')
    built = MODELS.build(model)
    optimizer = build_optim_wrapper(built, cfg.optim_wrapper).optimizer
    excluded = {id(p) for g in optimizer.param_groups if g.get('lars_exclude') for p in g['params']}
    for module_name, module in built.named_modules():
        for name, p in module.named_parameters(recurse=False):
            plain = (isinstance(module, torch.nn.modules.batchnorm._BatchNorm) or name == 'bias'
                     or module_name.startswith('head'))
            assert (id(p) in excluded) == plain, f'{module_name}.{name}'
    assert all(g['weight_decay'] == 0 for g in optimizer.param_groups)


def test_distillation_recipe():
    cfg = Config.fromfile(DISTILL)
    assert cfg.model.type == 'SimCLRv2Distiller' and cfg.model.temperature == 0.1
    assert cfg.model.backbone.sk_ratio == cfg.model.teacher.backbone.sk_ratio == SK_RATIO
    assert cfg.model.neck.type == 'GlobalAveragePooling'  # student: no projection head
    assert cfg.model.teacher.neck.out_layer == 1 and 'finetune-1pct' in cfg.model.teacher_checkpoint
    opt = cfg.optim_wrapper.optimizer
    assert (opt.lr, opt.weight_decay) == (pytest.approx(0.1 * math.sqrt(4096)), 1e-4)  # as pretraining
    assert [(s.begin, s.end) for s in cfg.param_scheduler] == [(0, 20), (20, 400)]
    assert cfg.train_dataloader.dataset.get('ann_file', '') == ''  # all training images, labels unused


@pytest.mark.parametrize('how', ['override', 'config'])
@pytest.mark.parametrize('arch', SIMCLRV2_ARCHS, ids=lambda a: a.name)
def test_each_published_architecture_by_override(arch, how):
    """The override documented in the pretraining config, and each architecture's own pretraining config, give each
    of the 13 models (meta device: no memory)."""
    if how == 'override':
        cfg = Config.fromfile(PRE[0])
        cfg.merge_from_dict({'model.backbone.depth': arch.depth, 'model.backbone.width_multiplier': arch.width,
                             'model.backbone.sk_ratio': SK_RATIO if arch.sk else 0.0,
                             'model.neck.in_channels': 2048 * arch.width})
    else:
        cfg = Config.fromfile(osp.join(V2, f'simclrv2_r{arch.depth}-{arch.width}x-sk{int(arch.sk)}'
                                   '_16xb256-coslr-800e_in1k.py'))
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    params = sum(p.numel() for p in model.backbone.parameters()) / 1e6
    assert abs(params - arch.params_m) <= max(0.01 * arch.params_m, 0.5), (params, arch.params_m)  # README rounding
    assert (model.neck.fc0.in_features, model.neck.fc0.out_features, model.neck.fc2.out_features) == (
        arch.feat_dim, arch.feat_dim, 128)


def test_lars_step_is_independent_of_weight_scale():
    """Why the fine-tuning configs need no v1 / v2 rescale: conv -> BN makes the output invariant to the kernel's
    scale c; after one LARS step (wd 0) the model scaled by c still computes the same function (its kernel stays
    c times the other's), while with momentum SGD the relative step of the scaled kernel shrinks by c^2."""
    from mmsimclr.engine.optimizers import LARS
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 5, (16, ))

    def net():
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5))

    def step(model, optimizer_type, **kwargs):
        conv = model[0].weight
        optimizer = optimizer_type([{'params': [conv]}], lr=0.5, momentum=0.9, **kwargs)
        before = conv.detach().clone()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        return ((conv.detach() - before).norm() / before.norm()).item()

    c = 16.8  # README: v1 conv weights are on average 16.8x v2's
    for optimizer_type, kwargs in ((LARS, dict(weight_decay=0.0)), (torch.optim.SGD, {})):
        v2 = net()
        v1 = net()
        v1.load_state_dict(v2.state_dict())
        with torch.no_grad():
            v1[0].weight.mul_(c)
            assert torch.allclose(v1(x), v2(x), atol=1e-4)  # same function before the step
        rel_v2, rel_v1 = step(v2, optimizer_type, **kwargs), step(v1, optimizer_type, **kwargs)
        if optimizer_type is LARS:
            assert rel_v1 == pytest.approx(rel_v2, rel=1e-3)
            with torch.no_grad():
                assert torch.allclose(v1[0].weight, c * v2[0].weight, rtol=1e-4, atol=1e-6)
                assert torch.allclose(v1(x), v2(x), atol=1e-4)
        else:
            assert rel_v1 == pytest.approx(rel_v2 / c ** 2, rel=1e-2)


# ----------------------------------------------------------------------------- the three steps on tiny data
TINY = ['train_dataloader.batch_size=8', 'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1', 'randomness.seed=0']
EVAL = [f'{loader}.{key}' for loader in ('val_dataloader', 'test_dataloader')
        for key in ('batch_size=16', 'dataset.indices=16', 'num_workers=0', 'persistent_workers=False',
                    'dataset.pipeline.2.scale=(32,32)')]
SAVE = ['default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.save_optimizer=False']


def state(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']  # our own run's file


def unwrap(runner):
    return runner.model.module if hasattr(runner.model, 'module') else runner.model


@pytest.fixture(scope='module')
def pretrained(tiny_imagenet, tmp_path_factory):
    """One pretraining step of R50 1x SK (8 images x 2 views of 32 px) with --auto-scale-lr."""
    work_dir = str(tmp_path_factory.mktemp('pretrain'))
    runner = train([PRE[1], '--work-dir', work_dir, '--auto-scale-lr', '--cfg-options',
                    f'train_dataloader.dataset.data_root={tiny_imagenet}', 'train_dataloader.dataset.indices=8',
                    'train_dataloader.dataset.pipeline.1.transforms.0.0.size=32'] + TINY + SAVE)
    return runner, osp.join(work_dir, 'epoch_1.pth')


def test_pretraining_step(pretrained):
    runner, checkpoint = pretrained
    assert runner.iter == 1 and osp.isfile(checkpoint)
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss) and loss > 0
    # square-root scaling: the lr set for 4096 becomes 0.1 x sqrt(8) for a total batch of 8
    group = runner.optim_wrapper.optimizer.param_groups[0]
    assert group['initial_lr'] == pytest.approx(0.1 * math.sqrt(8))
    keys = state(checkpoint)
    assert {'neck.fc0.weight', 'neck.fc2.weight', 'backbone.layer1.0.conv2.fc2.weight'} <= set(keys)


@pytest.fixture(scope='module')
def finetuned(pretrained, tiny_imagenet, tmp_path_factory):
    """Fine-tuning the pretrained checkpoint on the tiny 10% list: 2 iterations, then top-1 / top-5."""
    checkpoint = pretrained[1]
    work_dir = str(tmp_path_factory.mktemp('finetune'))
    runner = train([FT[(1, 10)], '--work-dir', work_dir, '--cfg-options',
                    f'model.backbone.init_cfg.checkpoint={checkpoint}', f'model.neck.init_cfg.checkpoint={checkpoint}',
                    'train_dataloader.dataset.pipeline.1.scale=32', 'param_scheduler.0.T_max=1',
                    'param_scheduler.0.end=1', 'train_cfg.val_interval=1'] +
                   [f'{loader}.dataset.data_root={tiny_imagenet}' for loader in LOADERS] + TINY + EVAL + SAVE)
    return runner, checkpoint, osp.join(work_dir, 'epoch_1.pth')


def test_finetune_from_first_head_layer(finetuned):
    runner, pretrained_path, _ = finetuned
    assert runner.iter == 2
    metrics = {k[len('val/'):]: v.current() for k, v in runner.message_hub.log_scalars.items()
               if k.startswith('val/')}
    assert 0 <= metrics['accuracy/top1'] <= metrics['accuracy/top5'] <= 100
    start, model = state(pretrained_path), unwrap(runner)
    now = {k: v.cpu() for k, v in model.state_dict().items()}
    # backbone and the first head layer: loaded, then trained (the zero-initialised classifier passes no gradient
    # at the first step, so they move at the second)
    for key in ('backbone.stem.0.conv.weight', 'backbone.layer4.2.conv3.weight', 'neck.fc0.weight'):
        assert not torch.equal(now[key], start[key]), f'{key} was not trained'
        assert torch.cosine_similarity(now[key].flatten(), start[key].flatten(), dim=0) > 0.99, key
    # the head's 2nd and 3rd layers: loaded, never run, never changed
    for key in ('neck.fc1.weight', 'neck.bn1.weight', 'neck.fc2.weight', 'neck.bn2.running_var'):
        assert torch.equal(now[key], start[key]), key
    assert now['head.fc.weight'].abs().sum() > 0 and now['head.fc.weight'].shape == (1000, 2048)


def test_distillation_step(finetuned, tiny_imagenet, tmp_path):
    teacher_path = finetuned[2]
    runner = train([DISTILL, '--work-dir', str(tmp_path), '--cfg-options', f'model.teacher_checkpoint={teacher_path}',
                    'train_dataloader.dataset.indices=8', 'train_dataloader.dataset.pipeline.1.scale=32',
                    'default_hooks.checkpoint.save_last=False', 'train_cfg.val_interval=1'] +
                   [f'{loader}.dataset.data_root={tiny_imagenet}' for loader in LOADERS] + TINY + EVAL)
    assert runner.iter == 1
    assert math.isfinite(runner.message_hub.get_scalar('train/loss').current())
    assert 0 <= runner.message_hub.get_scalar('train/agreement').current() <= 1
    assert 'val/accuracy/top1' in runner.message_hub.log_scalars
    model = unwrap(runner)
    assert not model.teacher.training and not any(p.requires_grad for p in model.teacher.parameters())
    teacher = {k: v.cpu() for k, v in model.teacher.state_dict().items()}
    expected = state(teacher_path)
    assert teacher.keys() == expected.keys()  # loaded strictly, and left as loaded
    assert all(torch.equal(teacher[k], expected[k]) for k in expected)


def test_distiller_loss_is_eq2():
    """Eq. (2): -sum_y softmax(t / tau) log softmax(s / tau), averaged over images; its gradient vanishes when the
    student's logits equal the teacher's."""
    from mmsimclr.models.algorithms.simclrv2_distiller import SimCLRv2Distiller
    head = dict(type='LinearClsHead', num_classes=5, in_channels=512, loss=dict(type='CrossEntropyLoss'))
    arch = dict(type='ResNetSK', depth=18, sk_ratio=0.0, out_indices=(3, ))
    model = SimCLRv2Distiller(backbone=arch, neck=dict(type='GlobalAveragePooling'), head=head, temperature=0.5,
                              teacher=dict(type='ImageClassifier', backbone=arch,
                                           neck=dict(type='GlobalAveragePooling'), head=head))
    s, t = torch.randn(4, 5, requires_grad=True), torch.randn(4, 5)
    expected = -(torch.softmax(t / 0.5, 1) * torch.log_softmax(s / 0.5, 1)).sum(1).mean()
    assert torch.allclose(model.distill_loss(s, t), expected)
    same = t.clone().requires_grad_()
    model.distill_loss(same, t).backward()
    assert same.grad.abs().max() < 1e-6
    with pytest.raises(ValueError, match='temperature'):
        SimCLRv2Distiller(backbone=arch, head=head, teacher=dict(type='ImageClassifier', backbone=arch),
                          temperature=0)
