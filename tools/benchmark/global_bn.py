"""Global BN: forward+backward time and saved-activation memory of ``GlobalBN`` vs ``torch.nn.BatchNorm2d``.

Columns: ``BatchNorm2d`` (the reference: what global BN should cost), ``SyncBatchNorm`` (torch's global BN; tried,
and reported as n/a where it refuses the device, e.g. CPU), ``GlobalBN`` (mmsimclr, the custom autograd function)
and ``GlobalBN-old`` (the previous implementation, a chain of element-wise tensor ops, kept here for comparison).

Model: ResNet-``depth`` + SimCLR's 2048-2048-128 projection head (``configs/_base_/models/simclr_r50.py``; plain BN
means ``BN``/``BN1d``), one process. GlobalBN layers are forced onto their global path (all-gather of statistics,
all-reduce of gradient sums) in a one-rank gloo group: the collectives are trivial, the tensors computed and saved
are the ones of a multi-rank run.

* time: median seconds of forward + backward (sum of the projections as the loss), variants interleaved.
* memory: bytes autograd saves for backward during the forward, per image, each storage counted once, parameters
  and buffers left out (``SavedActivations``; the same counter the 2-process test uses), fp32 and bf16 autocast;
  per image = (saved at 2 x batch - saved at batch) / batch, so that per-batch constants (autocast's bf16 weight
  copies) do not count as activations.
* layer: one norm layer alone on ``(batch, 256, 56, 56)`` (ResNet-50's ``layer1`` width at 224 px), forward +
  backward, to see the normalisation's own cost, which the convolutions hide in the whole network.

    python tools/benchmark/global_bn.py [--depth 50] [--size 224] [--batch 4] [--repeats 3] [--threads N]
"""
import argparse
import itertools
from typing import Dict, Optional

import torch
import torch.distributed as dist
import torch.nn as nn

if __package__:  # imported as tools.benchmark.global_bn (tests)
    from .common import fmt_ms, interleaved_medians
else:  # run as a script or imported by a sibling script: this folder is on sys.path
    from common import fmt_ms, interleaved_medians

VARIANTS = ['BatchNorm2d', 'SyncBatchNorm', 'GlobalBN', 'GlobalBN-old']


class SavedActivations:
    """``with SavedActivations(model) as s: out = model(x)`` then ``s.nbytes``: bytes autograd keeps for backward.

    Counts every tensor that reaches ``torch.autograd.graph.saved_tensors_hooks`` (saved by built-in ops and by
    custom ``autograd.Function``s alike) once per storage (in-place ops and views share one), leaving out the
    storages of ``exclude``'s parameters and buffers. Read ``nbytes`` while the graph is alive (before backward):
    the graph keeps the saved storages alive, so no two of them can share an address.
    """

    def __init__(self, exclude: Optional[nn.Module] = None):
        tensors = itertools.chain(exclude.parameters(), exclude.buffers()) if exclude is not None else ()
        self._skip = {t.untyped_storage().data_ptr() for t in tensors}
        self._sizes: Dict[int, int] = {}

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self._skip:
            self._sizes[ptr] = storage.nbytes()
        return t

    @property
    def nbytes(self) -> int:
        return sum(self._sizes.values())

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self._hooks.__exit__(*exc)


def previous_global_bn_class():
    """The element-wise implementation mmsimclr had before the custom autograd function (for comparison only)."""
    from mmsimclr.models.utils import GlobalBatchNorm, all_gather_with_grad

    class PreviousGlobalBN(GlobalBatchNorm):

        def _global_forward(self, x):
            c = x.shape[1]
            dims = [0] + list(range(2, x.dim()))
            xf = x if x.dtype == torch.float64 else x.float()
            local_var, local_mean = torch.var_mean(xf, dim=dims, unbiased=False)
            local_count = torch.full((1, ), x.numel() / c, dtype=xf.dtype, device=x.device)
            stats = all_gather_with_grad(torch.cat([local_mean, local_var, local_count])[None])
            means, variances, counts = stats[:, :c], stats[:, c:2 * c], stats[:, 2 * c:]
            total = counts.sum()
            mean = (counts * means).sum(0) / total
            var = (counts * (variances + (means - mean)**2)).sum(0) / total
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_((var * (total / (total - 1))).detach(), alpha=m)
            shape = [1, c] + [1] * (x.dim() - 2)
            y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
            y = y * self.weight.view(shape) + self.bias.view(shape)
            return y.to(x.dtype)

    return PreviousGlobalBN


def force_global(model: nn.Module) -> nn.Module:
    """GlobalBN layers take their global path even in a one-rank group (training mode only)."""
    from mmsimclr.models.utils import GlobalBatchNorm
    for m in model.modules():
        if isinstance(m, GlobalBatchNorm):
            m.forward = m._global_forward
    return model


def norm_cfgs(variant: str):
    """(backbone norm_cfg, neck norm_cfg) of a variant."""
    if variant == 'BatchNorm2d':
        return dict(type='BN'), dict(type='BN1d')
    if variant == 'SyncBatchNorm':
        return dict(type='SyncBN'), dict(type='SyncBN')
    if variant == 'GlobalBN-old':
        from mmsimclr.registry import MODELS
        if 'GlobalBNOld' not in MODELS.module_dict:
            MODELS.register_module('GlobalBNOld', module=previous_global_bn_class())
        return dict(type='GlobalBNOld'), dict(type='GlobalBNOld')
    return dict(type='GlobalBN'), dict(type='GlobalBN')


def build_norm(variant: str, channels: int) -> nn.Module:
    from mmcv.cnn import build_norm_layer
    return build_norm_layer(norm_cfgs(variant)[0], channels)[1]


def build(variant: str, depth: int) -> nn.Module:
    from mmpretrain.models import ResNet

    from mmsimclr.models.necks import NonLinearNeck
    backbone_norm, neck_norm = norm_cfgs(variant)
    width = 512 if depth < 50 else 2048
    model = nn.Sequential(ResNet(depth=depth, out_indices=(3, ), norm_cfg=backbone_norm, zero_init_residual=True),
                          NonLinearNeck(width, 2048, 128, norm_cfg=neck_norm))
    return force_global(model).train()


def step(model: nn.Module, x: torch.Tensor, amp: bool = False) -> None:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out = model(x)[0]
    out.float().sum().backward()


def saved_bytes(model: nn.Module, x: torch.Tensor, amp: bool = False) -> int:
    """Bytes autograd saves during ``model(x)`` (see ``SavedActivations``)."""
    with SavedActivations(model) as saved, torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out = model(x)
    nbytes = saved.nbytes
    del out
    return nbytes


def saved_bytes_per_image(model: nn.Module, x: torch.Tensor, amp: bool = False) -> float:
    """``(saved(x twice over) - saved(x)) / len(x)``: the part that grows with the batch. Per-batch constants, such
    as the bf16 copies of the weights that autocast saves, would otherwise count as activations (at a small batch
    they dominate)."""
    return (saved_bytes(model, torch.cat([x, x]), amp) - saved_bytes(model, x, amp)) / x.shape[0]


def init_one_rank_group(backend: str = 'gloo') -> bool:
    """A one-rank process group (``backend`` 'gloo', or 'nccl' on a GPU); False if one already existed."""
    if dist.is_initialized():
        return False
    # a store in memory: no port, nothing to clean up on the machine
    dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    return True


def build_variants(variants, depth: int, x: torch.Tensor):
    """``(models, layers, unavailable)``: each variant's model (same weights) and 256-channel norm layer on
    ``x``'s device, in training mode, checked by one step on ``x[:2]``; ``unavailable[variant]`` is the error of
    those that cannot run there (SyncBatchNorm on a CPU)."""
    models, layers, unavailable = {}, {}, {}
    for variant in variants:
        try:
            model = build(variant, depth).to(x.device)
            if models:
                model.load_state_dict(next(iter(models.values())).state_dict())
            step(model, x[:2])  # SyncBatchNorm refuses CPU tensors here
            model.zero_grad(set_to_none=True)
            layers[variant] = force_global(build_norm(variant, 256)).to(x.device).train()
            models[variant] = model
        except Exception as e:  # noqa: BLE001  (reported in the table)
            unavailable[variant] = f'{type(e).__name__}: {e}'
    return models, layers, unavailable


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--depth', type=int, default=50)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, help='torch.set_num_threads (default: torch\'s choice)')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmsimclr.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    init_one_rank_group()
    device = torch.device('cpu')
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)
    layer_x = torch.randn(args.batch, 256, 56, 56)
    models, layers, unavailable = build_variants(VARIANTS, args.depth, x)

    def layer_step(layer):
        inp = layer_x.clone().requires_grad_()
        layer(inp).sum().backward()

    times = interleaved_medians({v: (lambda m=m: step(m, x)) for v, m in models.items()}, args.repeats, 1, device)
    layer_times = interleaved_medians({v: (lambda m=m: layer_step(m)) for v, m in layers.items()},
                                      3 * args.repeats, 1, device)
    memory = {(v, amp): saved_bytes_per_image(m, x, amp) for v, m in models.items() for amp in (False, True)}

    ref = 'BatchNorm2d'
    print(f'Global BN, ResNet-{args.depth} + SimCLR neck, {args.size} px, batch {args.batch}, device={device}, '
          f'threads={torch.get_num_threads()}; median of {args.repeats} interleaved forward+backward steps; '
          'ratios are x / BatchNorm2d')
    print(f'{"variant":>14} | {"fwd+bwd":>12} {"ratio":>6} | {"layer f+b":>12} {"ratio":>6} | '
          f'{"saved MiB/img fp32":>18} {"ratio":>6} | {"bf16 autocast":>13} {"ratio":>6}')
    for v in VARIANTS:
        if v in unavailable:
            print(f'{v:>14} | n/a: {unavailable[v][:110]}')
            continue
        f32, b16 = memory[(v, False)], memory[(v, True)]
        print(f'{v:>14} | {fmt_ms(times[v])} {times[v] / times[ref]:6.2f} | {fmt_ms(layer_times[v])} '
              f'{layer_times[v] / layer_times[ref]:6.2f} | {f32 / 2**20:18.1f} {f32 / memory[(ref, False)]:6.2f} | '
              f'{b16 / 2**20:13.1f} {b16 / memory[(ref, True)]:6.2f}', flush=True)
    return dict(times=times, layer_times=layer_times, memory=memory, unavailable=unavailable)


if __name__ == '__main__':
    main()
