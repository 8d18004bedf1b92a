"""``tools/train.py --amp`` with batched augmentation on the training device, blur on: each ``_batchaug`` config
trains two iterations on the CPU (bf16 autocast).

mmengine's AMP wraps the data preprocessor in its autocast; the batched blur's convolution used to come out in
bf16 and the masked index-put of the views failed at the first iteration ("Index put requires the source and
destination dtypes match"). The configs: the tiny batched one (blur switched on), and the CIFAR-10 and ImageNet
``_base_/datasets/*_batchaug.py`` loaders and ``_base_/models/*_batchaug.py`` preprocessors with the tiny model, on
the tiny image folder (ImageNet through an annotation file listing it; its views made at 32 px instead of 224 to keep
the run short). All three run
in one Python process (``tools.train.main`` three times): the imports are most of the time.
"""
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

pytestmark = pytest.mark.shared_setup  # one worker makes the module fixture once

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')
TINY_BATCHAUG = osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny_batchaug.py')
BASES = {  # dataset base: (model part that sets the batched data preprocessor, overrides)
    'cifar10_bs512_simclr_batchaug': ('simclr_r18_cifar_batchaug', dict()),  # blur switched on below
    'imagenet_bs256_simclr_batchaug': ('simclr_r50_batchaug', dict(size=32)),  # blur as configured (p = 0.5)
}
TWO_ITERS = ['train_dataloader.batch_size=8', 'train_dataloader.dataset.indices=16', 'train_cfg.max_epochs=1']


def _config_on_tiny_model(base_name: str, tiny_data: str, out_dir: str) -> str:
    """The tiny config with the loader pipeline / dataset and the data preprocessor of a ``_batchaug`` base."""
    base = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'datasets', f'{base_name}.py'))
    model_part, overrides = BASES[base_name]
    part = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'models', f'{model_part}.py'))
    pre = dict(part.model.data_preprocessor.to_dict(), _delete_=True, **overrides)
    pre['blur_prob'] = pre['blur_prob'] or 0.5
    dataset = dict(base.train_dataloader.dataset.to_dict(), _delete_=True, data_root=tiny_data)
    if dataset['type'] == 'ImageNet':  # an annotation file (meta/train.txt in ImageNet) listing the tiny folder
        ann = osp.join(out_dir, 'train.txt')
        classes = sorted(os.listdir(osp.join(tiny_data, 'train')))
        with open(ann, 'w') as f:
            for label, name in enumerate(classes):
                for image in sorted(os.listdir(osp.join(tiny_data, 'train', name))):
                    f.write(f'{name}/{image} {label}\n')
        dataset['ann_file'] = ann
    path = osp.join(out_dir, f'{base_name}_tiny.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{TINY!r}]\nmodel = dict(data_preprocessor={pre!r})\n'
                f'train_dataloader = dict(dataset={dataset!r})\n')
    return path


@pytest.fixture(scope='module')
def amp_runs(tiny_data, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('amp_batchaug'))
    configs = {'tiny_batchaug': (TINY_BATCHAUG, ['model.data_preprocessor.blur_prob=0.5'])}
    for name in BASES:
        configs[name] = (_config_on_tiny_model(name, tiny_data, root), [])
    works, argvs = {}, []
    for name, (config, options) in configs.items():
        works[name] = (osp.join(root, name), osp.splitext(osp.basename(config))[0])
        argvs.append([config, '--amp', '--work-dir', works[name][0], '--cfg-options',
                      f'train_dataloader.dataset.data_root={tiny_data}'] + TWO_ITERS + options)
    script = ('import json, sys\nsys.path.insert(0, sys.argv[1])\nfrom tools.train import main\n'
              'for argv in json.loads(sys.argv[2]):\n    main(argv)\n')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    proc = subprocess.run([sys.executable, '-c', script, ROOT, json.dumps(argvs)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return works


@pytest.mark.parametrize('name', ['tiny_batchaug'] + list(BASES))
def test_batchaug_config_trains_two_iterations_with_amp_and_blur(amp_runs, name):
    work, config_name = amp_runs[name]
    cfg = Config.fromfile(osp.join(work, f'{config_name}.py'))  # as the runner dumped it
    assert cfg.optim_wrapper.type != 'OptimWrapper'  # --amp replaced the plain wrapper
    pre = cfg.model.data_preprocessor
    assert pre.type == 'SimCLRDataPreprocessor' and pre.blur_prob == 0.5
    assert 2 * (int(pre.get('blur_kernel_frac', 0.1) * pre.size) // 2) + 1 > 1  # a real blur kernel
    logs = [osp.join(dp, f) for dp, _, files in os.walk(work) for f in files if f.endswith('.log')]
    assert len(logs) == 1
    with open(logs[0]) as f:
        log = f.read()
    losses = re.findall(r'Epoch\(train\) \[1\]\[(\d)/2\].*loss: ([-\d.naife]+)', log)
    assert [i for i, _ in losses] == ['1', '2'], log[-2000:]
    assert all(math.isfinite(float(loss)) for _, loss in losses)
    state = torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu', weights_only=False)['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
