"""Make small checkpoints with the software stack that wrote OpenMMLab's published SimCLR weights (2022-08-25).

OpenMMLab's SimCLR files (see model_zoo.yml) were trained by mmselfsup 1.x on mmengine ~0.1 and numpy 1.x, saved by
the mmengine Runner, then "published": the ``optimizer`` entry removed and the rest re-saved in torch's legacy
(non-zip) format, the file named ``<name>_<YYYYMMDD>-<first 8 hex digits of its sha256>.pth``. This script repeats
that whole path at a tiny scale so that tests can load real files of that kind without downloading 100 MB each:

* ``simclr_resnet50-w8_pretrain_raw.pth``: mmselfsup's own ``SimCLR`` (ResNet-50 block layout and key names,
  depth=50, at 1/8 width: ``stem_channels=8, base_channels=8`` so the last stage gives 256 channels; NonLinearNeck
  256-64-16; ContrastiveHead, tau 0.1), trained 2 epochs x 2 iterations by an mmengine ``Runner`` with mmselfsup's
  SimCLR config structure (LARS + the bn/bias exclusions, LinearLR warm-up then cosine, mmcls ImageNet dataset
  read from a ``meta/train.txt`` list, SimCLR's two-view pipeline) on 8 generated images, as the Runner saved it
  (zip format, with ``optimizer``).
* ``simclr_resnet50-w8_pretrain_20220825-XXXXXXXX.pth``: that file published (see ``publish``).
* ``resnet50-w8_linear_raw.pth`` / ``resnet50-w8_linear_20220825-XXXXXXXX.pth``: the linear evaluation, as in
  mmselfsup's ``resnet50_linear-8xb512-coslr-90e_in1k.py``: mmcls ``ImageClassifier`` with the same reduced
  ResNet-50 (``frozen_stages=4``, initialised from the pretrain checkpoint's ``backbone.`` weights),
  ``GlobalAveragePooling``, ``LinearClsHead`` with 1000 classes (``head.fc.weight`` is 1000 x 256), mmselfsup's
  LARS (lr 1.6, no weight decay) with cosine annealing; ``dataset_meta.classes`` are ImageNet's 1000 class names,
  which mmcls' ``ImageNet`` dataset supplies (``mmcls.datasets.categories.IMAGENET_CATEGORIES``).
* ``manifest.json``: per file its sha256, format, top-level keys, meta summary, the pickle globals it references,
  the model configs (as used here, and the mmsimclr/mmpretrain equivalent), the package versions, and a per-tensor
  checksum of the state dict (float64 sum and sum of squares), so a test can check "the weights equal the file's"
  without trusting the loader under test.

Differences from the published runs, all forced by the tiny scale or by running on one CPU process:
* BN instead of SyncBN (SyncBN needs a process group; the state-dict keys and buffers are the same);
* 32 px crops instead of 224, 8 images, batch 4, 2 epochs with the schedule scaled to them;
* ``log_processor.window_size=2`` (not 10) so that ``IterTimerHook`` computes ``eta`` (a ``numpy.float64`` in
  ``message_hub.runtime_info``) within the 2 iterations of an epoch, as it did in the long published runs.

Environment (a throw-away venv, Python 3.11; the published runs used Python 3.7/3.8, which pip no longer serves
with these wheels here). Workarounds needed on Python 3.11 / today's PyPI:
* torch 2.0.1 from PyPI is the CUDA 11.7 build: ``--no-deps`` alone does not import (``libcublas.so.*[0-9] not
  found``), so the nvidia-*-cu11 wheels it names are installed too (triton is not needed on CPU);
* opencv-python is pinned to 4.6.0.66 and matplotlib to 3.6.3 (contourpy 1.0.7), since today's releases require
  numpy >= 1.25 / numpy 2 and would replace numpy 1.23.5;
* pip's site configuration (constraints and local wheel folders of this machine) is bypassed with
  ``PIP_CONFIG_FILE=/dev/null``.
Commands::

    python3.11 -m venv /tmp/legacyvenv
    export PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS=
    P=/tmp/legacyvenv/bin/pip
    $P install "pip<24.1" "setuptools<70" wheel
    $P install --no-deps torch==2.0.1 torchvision==0.15.2
    $P install numpy==1.23.5 filelock typing-extensions sympy networkx jinja2 pillow requests \\
        nvidia-cuda-nvrtc-cu11==11.7.99 nvidia-cuda-runtime-cu11==11.7.99 nvidia-cuda-cupti-cu11==11.7.101 \\
        nvidia-cudnn-cu11==8.5.0.96 nvidia-cublas-cu11==11.10.3.66 nvidia-cufft-cu11==10.9.0.58 \\
        nvidia-curand-cu11==10.2.10.91 nvidia-cusolver-cu11==11.4.0.1 nvidia-cusparse-cu11==11.7.4.91 \\
        nvidia-nccl-cu11==2.14.3 nvidia-nvtx-cu11==11.7.91
    $P install yapf==0.32.0 mmengine==0.1.0 numpy==1.23.5 opencv-python==4.6.0.66 matplotlib==3.6.3 contourpy==1.0.7
    MMCV_WITH_OPS=0 $P install --no-build-isolation numpy==1.23.5 mmcv-lite==2.0.0rc1
    $P install numpy==1.23.5 mmcls==1.0.0rc0 mmselfsup==1.0.0rc1
    /tmp/legacyvenv/bin/python tests/data/legacy_checkpoints/make_legacy_checkpoints.py

The output is deterministic in its weights for a given stack (seed 0, CPU), but not byte-for-byte: the Runner
stores the wall-clock time, timings and the config text, so the sha256 (and the published names) change on every
run; the script removes older generated ``.pth`` files of the same names first.
"""
import copy
import glob
import hashlib
import json
import os
import os.path as osp
import pickletools
import shutil
import sys
import tempfile
import zipfile

import numpy as np
import torch
from PIL import Image

OUT_DIR = osp.dirname(osp.abspath(__file__))
PUBLISH_DATE = '20220825'  # the date in OpenMMLab's published SimCLR file names
PRETRAIN_NAME = 'simclr_resnet50-w8_pretrain'
LINEAR_NAME = 'resnet50-w8_linear'

WIDTH = dict(stem_channels=8, base_channels=8)  # ResNet-50 at 1/8 width: stages give 32, 64, 128, 256 channels
FEAT = 256
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]

# --- model configs (mmselfsup 1.0.0rc1 / mmcls 1.0.0rc0 terms, as used here) -----------------------------------
PRETRAIN_MODEL = dict(
    type='SimCLR',
    data_preprocessor=dict(mean=MEAN, std=STD, bgr_to_rgb=True),
    backbone=dict(type='ResNet', depth=50, in_channels=3, out_indices=[4], norm_cfg=dict(type='BN'),
                  zero_init_residual=True, **WIDTH),
    neck=dict(type='NonLinearNeck', in_channels=FEAT, hid_channels=64, out_channels=16, num_layers=2,
              with_avg_pool=True),
    head=dict(type='ContrastiveHead', loss=dict(type='mmcls.CrossEntropyLoss'), temperature=0.1),
)
LINEAR_MODEL = dict(
    type='ImageClassifier',
    data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True),
    backbone=dict(type='ResNet', depth=50, in_channels=3, num_stages=4, norm_cfg=dict(type='BN'), frozen_stages=4,
                  **WIDTH),  # init_cfg (the pretrain checkpoint) is added at run time
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=FEAT,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)),
)

# --- the same models in mmsimclr / mmpretrain 1.x terms (out_indices count stages from 0 there) ---------------
MMSIMCLR_PRETRAIN_MODEL = dict(
    type='SimCLR',
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=MEAN, std=STD, to_rgb=True),
    backbone=dict(type='ResNet', depth=50, out_indices=(3, ), norm_cfg=dict(type='BN'), zero_init_residual=True,
                  **WIDTH),
    neck=dict(type='NonLinearNeck', in_channels=FEAT, hid_channels=64, out_channels=16, num_layers=2,
              with_avg_pool=True),
    head=dict(type='ContrastiveHead', loss=dict(type='NTXentLoss'), temperature=0.1),
)
MMSIMCLR_LINEAR_MODEL = dict(
    type='ImageClassifier',
    data_preprocessor=dict(num_classes=1000, mean=MEAN, std=STD, to_rgb=True),
    backbone=dict(type='ResNet', depth=50, num_stages=4, out_indices=(3, ), style='pytorch', frozen_stages=4,
                  norm_eval=True, **WIDTH),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=FEAT,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)),
)


def make_images(root: str, n: int = 16, seed: int = 0) -> None:
    """Write ``n`` small JPEGs (32..64 px, random blocks of colour) under root/train and an ImageNet-style list
    root/meta/train.txt of ``<file> <label>`` lines (labels spread over 0..999)."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'train'), exist_ok=True)
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    lines = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(32, 65, 2))
        cells = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
        img = np.kron(cells, np.ones((16, 16, 1), np.uint8))[:h, :w]
        name = f'img_{i:02d}.jpg'
        Image.fromarray(img).save(osp.join(root, 'train', name), quality=90)
        lines.append(f'{name} {(i * 125) % 1000}')  # 8 distinct labels
    with open(osp.join(root, 'meta', 'train.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def runtime_cfg(work_dir: str) -> dict:
    """The parts of mmselfsup's default_runtime.py both runs share (logger/checkpoint every epoch here)."""
    return dict(
        work_dir=work_dir,
        default_hooks=dict(
            runtime_info=dict(type='RuntimeInfoHook'),
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=1),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
            sampler_seed=dict(type='DistSamplerSeedHook'),
        ),
        env_cfg=dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
                     dist_cfg=dict(backend='nccl')),
        log_processor=dict(window_size=2, custom_cfg=[dict(data_src='', method='mean', windows_size='global')]),
        log_level='WARNING',
        load_from=None,
        resume=False,
        randomness=dict(seed=0),
        launcher='none',
    )


def pretrain_cfg(data_root: str, work_dir: str) -> dict:
    view_pipeline = [
        dict(type='RandomResizedCrop', size=32, backend='pillow'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='RandomApply', prob=0.8,
             transforms=[dict(type='ColorJitter', brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)]),
        dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
        dict(type='RandomGaussianBlur', sigma_min=0.1, sigma_max=2.0, prob=0.5),
    ]
    cfg = dict(
        default_scope='mmselfsup',
        model=copy.deepcopy(PRETRAIN_MODEL),
        train_dataloader=dict(
            batch_size=4, num_workers=0, persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='mmcls.ImageNet', data_root=data_root, ann_file='meta/train.txt',
                data_prefix=dict(img_path='train/'),
                pipeline=[
                    dict(type='LoadImageFromFile', file_client_args=dict(backend='disk')),
                    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
                    dict(type='PackSelfSupInputs', meta_keys=['img_path']),
                ])),
        optim_wrapper=dict(
            type='OptimWrapper',
            optimizer=dict(type='LARS', lr=0.3, momentum=0.9, weight_decay=1e-6),
            paramwise_cfg=dict(custom_keys={
                'bn': dict(decay_mult=0, lars_exclude=True),
                'bias': dict(decay_mult=0, lars_exclude=True),
                'downsample.1': dict(decay_mult=0, lars_exclude=True),
            })),
        param_scheduler=[
            dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
            dict(type='CosineAnnealingLR', T_max=9, by_epoch=True, begin=1, end=10),
        ],
        # 40 iterations: enough for BN's running statistics (momentum 0.1) to settle, so that the frozen, eval-mode
        # backbone of the linear evaluation gives features of a sane scale (after 8 it gave ~1e9)
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=10),
    )
    cfg.update(runtime_cfg(work_dir))
    return cfg


def linear_cfg(data_root: str, work_dir: str, pretrained: str) -> dict:
    model = copy.deepcopy(LINEAR_MODEL)
    model['backbone']['init_cfg'] = dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')
    cfg = dict(
        default_scope='mmcls',
        custom_imports=dict(imports=['mmselfsup.models', 'mmselfsup.engine'], allow_failed_imports=False),
        model=model,
        train_dataloader=dict(
            batch_size=4, num_workers=0, persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(
                type='ImageNet', data_root=data_root, ann_file='meta/train.txt', data_prefix='train',
                pipeline=[
                    dict(type='LoadImageFromFile', file_client_args=dict(backend='disk')),
                    dict(type='RandomResizedCrop', scale=32, backend='pillow'),
                    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                    dict(type='PackClsInputs'),
                ])),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='mmselfsup.LARS', lr=1.6, momentum=0.9,
                                                               weight_decay=0.)),
        param_scheduler=[dict(type='CosineAnnealingLR', T_max=2, by_epoch=True, begin=0, end=2)],
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=2),
    )
    cfg.update(runtime_cfg(work_dir))
    return cfg


def train(cfg_dict: dict, scope: str) -> str:
    """Train with an mmengine Runner; return the path of the last checkpoint it saved."""
    import importlib

    from mmengine.config import Config
    from mmengine.runner import Runner
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=True)
    runner = Runner.from_cfg(Config(cfg_dict))
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert np.isfinite(losses).all() and losses[-1] < 50, f'training diverged: train/loss {losses}'
    ckpt = osp.join(cfg_dict['work_dir'], f"epoch_{cfg_dict['train_cfg']['max_epochs']}.pth")
    assert osp.isfile(ckpt), f'the Runner wrote no {ckpt}'
    return ckpt


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def publish(raw: str, name: str) -> str:
    """What mmselfsup's tools/model_converters/publish_model.py does: drop ``optimizer``, re-save in torch's
    legacy (non-zip) format, rename to ``<name>_<date>-<sha256[:8]>.pth`` (date fixed to the published one)."""
    ckpt = torch.load(raw, map_location='cpu')
    ckpt.pop('optimizer', None)
    tmp = osp.join(OUT_DIR, name + '.pth')
    torch.save(ckpt, tmp, _use_new_zipfile_serialization=False)
    final = osp.join(OUT_DIR, f'{name}_{PUBLISH_DATE}-{sha256(tmp)[:8]}.pth')
    os.replace(tmp, final)
    return final


def pickle_globals(path: str) -> list:
    """``module.name`` of every GLOBAL / STACK_GLOBAL the file's pickles reference, read with pickletools (no
    unpickling). Legacy files are a run of pickles followed by raw storage bytes; zip files hold ``*/data.pkl``."""
    def scan(stream, out):
        strings = []
        for op, arg, _ in pickletools.genops(stream):
            if op.name == 'GLOBAL':
                out.add(arg.replace(' ', '.'))
            elif op.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'UNICODE'):
                strings.append(arg)
            elif op.name == 'STACK_GLOBAL' and len(strings) >= 2:  # protocol >= 4 (not used by torch.save)
                out.add(f'{strings[-2]}.{strings[-1]}')
        return out

    found = set()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if member.endswith('data.pkl'):
                    with zf.open(member) as f:
                        scan(f, found)
    else:
        with open(path, 'rb') as f:
            for _ in range(4):  # magic number, protocol version, sys info, the checkpoint itself
                scan(f, found)
    return sorted(found)


def describe(path: str, model_cfg: dict, mmsimclr_cfg: dict) -> dict:
    ckpt = torch.load(path, map_location='cpu')
    meta = ckpt['meta']
    tensors = {}
    for key, t in ckpt['state_dict'].items():
        d = t.detach().to(torch.float64)
        tensors[key] = dict(shape=list(t.shape), dtype=str(t.dtype).replace('torch.', ''),
                            sum=float(d.sum()), sum_sq=float((d * d).sum()))
    classes = meta.get('dataset_meta', {}).get('classes')
    return dict(
        sha256=sha256(path),
        size_bytes=os.path.getsize(path),
        format='zip' if zipfile.is_zipfile(path) else 'legacy',
        top_level_keys=list(ckpt.keys()),
        meta=dict(epoch=meta['epoch'], iter=meta['iter'], seed=meta['seed'],
                  mmengine_version=meta['mmengine_version'], keys=sorted(meta.keys()),
                  num_classes=None if classes is None else len(classes),
                  first_classes=None if classes is None else list(classes[:3])),
        message_hub=dict(log_scalars=sorted(ckpt['message_hub']['log_scalars']),
                         runtime_info={k: type(v).__module__ + '.' + type(v).__qualname__
                                       for k, v in sorted(ckpt['message_hub']['runtime_info'].items())}),
        pickle_globals=pickle_globals(path),
        model=model_cfg,
        mmsimclr_model=mmsimclr_cfg,
        state_dict=tensors,
    )


def main() -> None:
    import mmcls
    import mmengine
    import mmselfsup
    import mmcv
    for pattern in (PRETRAIN_NAME, LINEAR_NAME):
        for old in glob.glob(osp.join(OUT_DIR, pattern + '_*.pth')):
            os.remove(old)
    tmp = tempfile.mkdtemp(prefix='legacy_ckpt_')
    try:
        data_root = osp.join(tmp, 'data')
        make_images(data_root)
        raw_pre = train(pretrain_cfg(data_root, osp.join(tmp, 'work_pretrain')), 'mmselfsup')
        raw_lin = train(linear_cfg(data_root, osp.join(tmp, 'work_linear'), raw_pre), 'mmcls')
        files = {}
        for raw, name, model, equiv in ((raw_pre, PRETRAIN_NAME, PRETRAIN_MODEL, MMSIMCLR_PRETRAIN_MODEL),
                                        (raw_lin, LINEAR_NAME, LINEAR_MODEL, MMSIMCLR_LINEAR_MODEL)):
            kept = osp.join(OUT_DIR, f'{name}_raw.pth')
            shutil.copyfile(raw, kept)
            published = publish(kept, name)
            for path in (kept, published):
                files[osp.basename(path)] = describe(path, model, equiv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    manifest = dict(
        made_by=osp.basename(__file__),
        python=sys.version.split()[0],
        versions=dict(torch=torch.__version__, numpy=np.__version__, mmengine=mmengine.__version__,
                      mmcv=mmcv.__version__, mmcls=mmcls.__version__, mmselfsup=mmselfsup.__version__),
        publish_date=PUBLISH_DATE,
        checksum='per tensor: float64 sum and sum of squares of the state_dict entry',
        notes=['state_dict holds data_preprocessor.mean/std: mmengine 0.1 saved every buffer; today they are '
               'non-persistent buffers, so a strict load into mmsimclr_model reports them as unexpected keys',
               'mmsimclr_model is the same network in mmsimclr / mmpretrain 1.x terms: every other key and shape '
               'matches (checked with mmsimclr at the time the fixtures were made)',
               'BN replaces the SyncBN of the published runs (one CPU process); keys and buffers are the same'],
        files=files,
    )
    with open(osp.join(OUT_DIR, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')
    for name, info in files.items():
        print(f'{name}: {info["size_bytes"]} bytes, {info["format"]}, keys {info["top_level_keys"]}')


if __name__ == '__main__':
    main()
