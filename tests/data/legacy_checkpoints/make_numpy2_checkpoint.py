"""Make ``numpy2_runner_checkpoint.pth``: a checkpoint written by today's mmengine Runner under numpy 2.

Its ``message_hub`` holds numpy 2 objects (``HistoryBuffer`` arrays, the ``numpy.float64`` ``eta``), which numpy 2
pickles under ``numpy._core.*`` names; the file is for checking that such a checkpoint still loads where numpy 1.x
(e.g. 1.26) is installed. The model is mmsimclr's tiny smoke-test SimCLR
(``configs/simclr_r18_1xb16-coslr-2e_tiny.py``, CIFAR ResNet-18, here at 1/16 width: ``stem_channels=4,
base_channels=4``, 32-d features, NonLinearNeck 32-32-16, so that the file with its optimizer stays under 1 MB),
trained 2 epochs of one 16-image batch on ``tools/make_tiny_dataset.py`` data; ``log_processor.window_size=1`` so that ``IterTimerHook``
computes ``eta`` in a one-iteration epoch. The weights are deterministic (seed 0, CPU); the bytes are not (the
Runner stores times and timings).

Run with the project's environment (numpy 2, mmengine 0.10.7) from the repository root::

    .venv/bin/python tests/data/legacy_checkpoints/make_numpy2_checkpoint.py
"""
import os.path as osp
import shutil
import sys
import tempfile

OUT = osp.join(osp.dirname(osp.abspath(__file__)), 'numpy2_runner_checkpoint.pth')
REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))


def main() -> None:
    sys.path.insert(0, REPO)
    import numpy as np
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmsimclr.utils import register_all_modules
    from tools.make_tiny_dataset import make_tiny_dataset

    assert int(np.__version__.split('.')[0]) >= 2, f'run this with numpy 2 (found {np.__version__})'
    register_all_modules(init_default_scope=True)
    tmp = tempfile.mkdtemp(prefix='numpy2_ckpt_')
    try:
        data_root = make_tiny_dataset(osp.join(tmp, 'data'), classes=4, per_class=4, splits=('train', ))
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py'))
        cfg.work_dir = osp.join(tmp, 'work')
        cfg.train_dataloader.dataset.data_root = data_root
        # half the tiny config's width (4 channels in the first stage, 32-d features) to keep the file < 1 MB
        cfg.model.backbone.update(stem_channels=4, base_channels=4)
        cfg.model.neck.update(in_channels=32, hid_channels=32, out_channels=16)
        cfg.log_processor = dict(window_size=1)
        cfg.log_level = 'WARNING'
        runner = Runner.from_cfg(cfg)
        runner.train()
        losses = runner.message_hub.get_scalar('train/loss').data[0]
        assert np.isfinite(losses).all(), f'training diverged: train/loss {losses}'
        shutil.copyfile(osp.join(cfg.work_dir, 'epoch_2.pth'), OUT)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f'wrote {OUT} ({osp.getsize(OUT)} bytes)')


if __name__ == '__main__':
    main()
