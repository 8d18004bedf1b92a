"""SimCLROptimWrapperConstructor: the groups it builds against a brute-force expectation per parameter."""
import pytest
import torch
import torch.nn as nn
from mmengine.registry import DefaultScope

from mmsimclr.engine.optimizers import SimCLROptimWrapperConstructor


def zoo():
    """Every kind the exclusion must see, under names that no substring rule ('bn', 'bias') would catch."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module('stem', nn.Conv2d(3, 8, 3, bias=False))
    model.add_module('n1', nn.BatchNorm2d(8))
    model.add_module('proj', nn.Conv2d(8, 8, 1))  # with a bias
    model.add_module('g', nn.GroupNorm(2, 8))
    model.add_module('inst', nn.InstanceNorm2d(8, affine=True))
    model.add_module('frozen', nn.Conv2d(8, 8, 1))
    model.add_module('pool', nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    model.add_module('fc', nn.Linear(8, 16))
    model.add_module('ln', nn.LayerNorm(16))
    model.add_module('out', nn.Linear(16, 4, bias=False))
    model.frozen.requires_grad_(False)
    model.register_parameter('scale', nn.Parameter(torch.ones(1)))  # a parameter of the root module
    return model


def expected(model, base_wd, custom=None):
    """(weight_decay or None when left to the optimizer's default, lars_exclude, lr) for every trainable
    parameter, by walking the modules: norm-layer parameters and biases excluded unless a custom key names them."""
    custom = custom or {}
    out = {}
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm))
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            full = f'{module_name}.{name}' if module_name else name
            keys = [k for k in sorted(custom, key=len, reverse=True) if k in f'{module_name}.{name}']
            if keys:
                rule = custom[keys[0]]
                out[full] = (base_wd * rule.get('decay_mult', 1.0), rule.get('lars_exclude', False),
                             0.1 * rule.get('lr_mult', 1.0))
            elif is_norm or name == 'bias':
                out[full] = (0.0, True, 0.1)
            else:
                out[full] = (None, False, 0.1)
    return out


def built(model, optimizer, paramwise_cfg=None):
    with DefaultScope.overwrite_default_scope('mmsimclr'):
        ctor = SimCLROptimWrapperConstructor(dict(type='OptimWrapper', optimizer=optimizer), paramwise_cfg)
        groups = ctor(model).optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    got = {}
    for g in groups:
        for p in g['params']:
            assert names[id(p)] not in got, 'a parameter in two groups'
            got[names[id(p)]] = g
    return groups, got


@pytest.mark.parametrize('optimizer, default_wd', [(dict(type='LARS', lr=0.1, weight_decay=1e-6), None),
                                                   (dict(type='SGD', lr=0.1, weight_decay=1e-4), None),
                                                   (dict(type='AdamW', lr=0.1), 1e-2)])  # AdamW's default
def test_groups_match_brute_force(optimizer, default_wd):
    model = zoo()
    base_wd = optimizer.get('weight_decay', default_wd)
    groups, got = built(model, optimizer)
    want = expected(model, base_wd)
    assert set(got) == set(want)  # every trainable parameter once, the frozen ones nowhere
    for name, (wd, lars_exclude, lr) in want.items():
        g = got[name]
        assert g['weight_decay'] == (base_wd if wd is None else wd), name
        assert g.get('lars_exclude', False) == lars_exclude, name
        assert g['lr'] == pytest.approx(lr), name
    assert len(groups) == 2  # merged: one group per distinct setting


def test_custom_keys_take_precedence_as_in_mmengine():
    model = zoo()
    custom = {'fc': dict(lr_mult=0.5), 'ln': dict(lr_mult=2.0, decay_mult=0.0, lars_exclude=True)}
    groups, got = built(model, dict(type='LARS', lr=0.1, weight_decay=1e-6), dict(custom_keys=custom))
    want = expected(model, 1e-6, custom)
    assert got['fc.bias']['weight_decay'] == 1e-6 and not got['fc.bias'].get('lars_exclude', False)
    for name, (wd, lars_exclude, lr) in want.items():
        g = got[name]
        assert g['weight_decay'] == (1e-6 if wd is None else wd), name
        assert g.get('lars_exclude', False) == lars_exclude, name
        assert g['lr'] == pytest.approx(lr), name
    assert len(groups) == 4


def test_exclusion_off_is_mmengine_default():
    model = zoo()
    groups, got = built(model, dict(type='LARS', lr=0.1, weight_decay=1e-6), dict(exclude_norm_and_bias=False))
    assert len(groups) == 1 and not groups[0]['lars_exclude'] and groups[0]['weight_decay'] == 1e-6


def test_explicit_multiplier_wins_over_the_default():
    model = zoo()
    _, got = built(model, dict(type='SGD', lr=0.1, weight_decay=1e-4), dict(norm_decay_mult=0.5))
    assert got['n1.weight']['weight_decay'] == pytest.approx(5e-5) and got['n1.weight']['lars_exclude']
    assert got['proj.bias']['weight_decay'] == 0.0 and got['stem.weight']['weight_decay'] == 1e-4
