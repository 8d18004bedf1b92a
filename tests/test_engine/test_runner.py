"""SimCLRRunner: auto_scale_lr with the square-root rule (SimCLR's for small batches) next to mmengine's linear one."""
import math
import os.path as osp

import pytest


@pytest.mark.parametrize('rule, factor', [('sqrt', math.sqrt(8 / 32)), ('linear', 8 / 32), (None, 8 / 32)])
def test_auto_scale_lr_rules(repo_root, tiny_data, tmp_path, rule, factor):
    from mmengine.config import Config

    from mmsimclr.engine import SimCLRRunner
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py'))
    cfg.train_dataloader.dataset.data_root = tiny_data
    cfg.train_dataloader.batch_size = 8
    cfg.work_dir = str(tmp_path)
    cfg.auto_scale_lr = dict(enable=True, base_batch_size=32, **({} if rule is None else dict(rule=rule)))
    runner = SimCLRRunner.from_cfg(cfg)
    wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    before = [g['lr'] for g in wrapper.optimizer.param_groups]
    runner.scale_lr(wrapper, runner.auto_scale_lr)
    assert [g['lr'] for g in wrapper.optimizer.param_groups] == pytest.approx([lr * factor for lr in before])


def test_unknown_rule_is_refused():
    from mmsimclr.engine import lr_scale
    assert lr_scale(4096, 256, 'sqrt') == 4.0 and lr_scale(4096, 256, 'linear') == 16.0
    with pytest.raises(ValueError, match="rule must be one of"):
        lr_scale(512, 256, 'log')
