"""Worker functions for the 2-process (gloo) tests, forked by torch.multiprocessing (a fork starts in well under a
second; a spawned process would import torch, mmengine and mmpretrain again, ~9 s of CPU each)."""
import datetime
import os

import torch
import torch.distributed as dist


def init(rank: int, world_size: int, port: int) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # bounded: a rank that dies makes the other fail within the timeout instead of hanging the test run
    dist.init_process_group('gloo', rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=120))
    from mmsimclr.utils import register_all_modules
    register_all_modules()


def simclr_gradients(rank, world_size, port, model_cfg, state_path, views_path, out_dir, use_mmpretrain_gather):
    """Each rank trains on its slice of the global batch under DDP; writes its parameter gradients."""
    init(rank, world_size, port)
    from mmsimclr.engine import SimCLRDistributedDataParallel
    from mmsimclr.registry import MODELS
    model = MODELS.build(model_cfg).double()
    model.load_state_dict(torch.load(state_path, weights_only=True))
    model.train()
    views = torch.load(views_path, weights_only=True)  # (V, N, 3, H, W), float64
    n = views.shape[1] // world_size
    local = [v[rank * n:(rank + 1) * n] for v in views]
    if use_mmpretrain_gather:
        _use_mmpretrain_gather(model)
    ddp = SimCLRDistributedDataParallel(model, broadcast_buffers=False)
    loss = ddp(local, None, mode='loss')['loss']
    loss.backward()
    if rank == 0:
        grads = {k: p.grad.clone() for k, p in model.named_parameters()}
        torch.save(grads, os.path.join(out_dir, 'grads.pth'))
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, os.path.join(out_dir, 'state.pth'))
    dist.destroy_process_group()


def _use_mmpretrain_gather(model):
    """Swap the loss for mmpretrain's formulation (GatherLayer + full 2N x 2N loss on every rank)."""
    from mmpretrain.models.selfsup.simclr import SimCLR as MMPretrainSimCLR
    from mmpretrain.registry import MODELS as MMP
    head = MMP.build(dict(type='mmpretrain.ContrastiveHead', loss=dict(type='mmpretrain.CrossEntropyLoss'),
                          temperature=model.head.temperature))

    def loss(inputs, data_samples=None):
        proxy = type('Proxy', (), {})()
        proxy.backbone, proxy.neck, proxy.head = model.backbone, model.neck, head
        proxy._create_buffer = MMPretrainSimCLR._create_buffer
        return MMPretrainSimCLR.loss(proxy, inputs, data_samples)

    model.loss = loss


def global_bn(rank, world_size, port, x_path, state_path, out_dir):
    """Each rank normalises its slice of the batch with GlobalBN; writes outputs, input grads and running stats.
    Then (same processes: one start-up less) the saved-activation memory, see ``_global_bn_saved_memory``."""
    init(rank, world_size, port)
    from mmsimclr.models.utils import GlobalBatchNorm
    bn = GlobalBatchNorm(3)
    bn.load_state_dict(torch.load(state_path, weights_only=True))
    x = torch.load(x_path, weights_only=True)
    n = x.shape[0] // world_size
    local = x[rank * n:(rank + 1) * n].clone().requires_grad_()
    y = bn(local)
    weights = torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape) / y.numel()
    (y * weights[0:1] * (rank + 1)).sum().backward()  # a non-trivial, rank-dependent upstream gradient
    torch.save(dict(y=y.detach(), grad=local.grad, weight_grad=bn.weight.grad, running_mean=bn.running_mean,
                    running_var=bn.running_var), os.path.join(out_dir, f'bn{rank}.pth'))
    _global_bn_saved_memory(rank, os.path.join(out_dir, 'saved.json'))
    dist.destroy_process_group()



def _global_bn_saved_memory(rank, out_path):
    """Saved-activation bytes per image of a 1/4-width ResNet-18 + neck at 64 px with BN, GlobalBN and the previous
    GlobalBN, fp32 and bf16 autocast, GlobalBN on its global path (2 ranks); rank 0 writes them as JSON (by value)."""
    import json

    import torch.nn as nn
    from mmpretrain.models import ResNet

    from mmsimclr.models.necks import NonLinearNeck
    from tools.benchmark.global_bn import norm_cfgs, saved_bytes_per_image
    torch.manual_seed(rank)
    x = torch.randn(2, 3, 64, 64)
    result = {}
    for variant in ('BatchNorm2d', 'GlobalBN-old', 'GlobalBN'):  # GlobalBN last: its model runs backward
        backbone_norm, neck_norm = norm_cfgs(variant)
        model = nn.Sequential(ResNet(depth=18, base_channels=16, stem_channels=16, norm_cfg=backbone_norm),
                              NonLinearNeck(128, 64, 32, norm_cfg=neck_norm)).train()
        for amp in (False, True):
            result[f'{variant} {"bf16" if amp else "fp32"}'] = saved_bytes_per_image(model, x, amp)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model(x)[0].float().square().mean()
    loss.backward()  # the saved tensors suffice for backward, collectives included
    result['GlobalBN grad finite'] = all(bool(p.grad.isfinite().all()) for p in model.parameters())
    if rank == 0:
        with open(out_path, 'w') as f:
            json.dump(result, f)
