"""GlobalBN's global path against torch's BatchNorm in one process (2 ranks: ``test_distributed.py``).

In one process the global batch is the local batch, so the global path (statistics all-gathered and combined,
gradient sums all-reduced; run here in a one-rank gloo group) must give BatchNorm's outputs, gradients and running
statistics. The 2-rank tests in ``test_distributed.py`` check the global statistics themselves.
Where CUDA is available the same checks run on the GPU (the same code: GlobalBN has no device-specific branch; gloo
handles CUDA tensors). Without a GPU, :func:`test_every_op_of_the_global_path_has_a_cuda_kernel` checks that the
path CI runs is one a CUDA input can take.
"""
import pytest
import torch
import torch.distributed as dist

from mmsimclr.models.utils import GlobalBatchNorm

from .test_distributed import relative_difference


@pytest.fixture(scope='module')
def one_rank_group():
    """A one-rank gloo group with an in-memory store (no port), destroyed after this module's tests."""
    assert not dist.is_initialized(), 'a test left a process group initialised in the pytest process'
    dist.init_process_group('gloo', store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU'))]


def _pair(shape, affine=True, momentum=0.1, dtype=torch.float32, device='cpu'):
    """(torch BatchNorm, GlobalBN) with the same random affine parameters."""
    reference = (torch.nn.BatchNorm1d if len(shape) < 4 else torch.nn.BatchNorm2d)(
        shape[1], affine=affine, momentum=momentum).to(dtype)
    if affine:
        with torch.no_grad():
            reference.weight.uniform_(0.5, 1.5)
            reference.bias.uniform_(-1, 1)
    ours = GlobalBatchNorm(shape[1], affine=affine, momentum=momentum).to(dtype)
    ours.load_state_dict(reference.state_dict())
    return reference.to(device), ours.to(device)


def _step(module, x, upstream, global_path, amp=False):
    """Forward (training) + backward with a fixed upstream gradient; returns (y, dL/dx)."""
    x = x.clone().requires_grad_()
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        y = module._global_forward(x) if global_path else module(x)
    y.backward(upstream.to(y.dtype))
    return y.detach(), x.grad


def _params_and_buffers(module):
    return {k: v for k, v in module.state_dict().items()} | {
        f'{k}.grad': p.grad for k, p in module.named_parameters()}


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('shape,channels_last,affine,momentum', [
    ((16, 6), False, True, 0.1),  # BatchNorm1d on (N, C): the projection head
    ((4, 5, 7), False, True, 0.1),  # BatchNorm1d on (N, C, L)
    ((4, 5, 6, 7), False, True, 0.1),
    ((4, 5, 6, 7), True, True, 0.1),
    ((4, 5, 6, 7), True, False, None),  # no affine; cumulative running average
])
def test_global_path_equals_batch_norm(one_rank_group, shape, channels_last, affine, momentum, device):
    torch.manual_seed(0)
    reference, ours = _pair(shape, affine, momentum, device=device)
    for step in range(2):  # two steps: the running statistics accumulate
        x = (torch.randn(shape) * 3 + 2 * step - 1).to(device)
        upstream = torch.randn(shape).to(device)
        if channels_last:
            x, upstream = (t.to(memory_format=torch.channels_last) for t in (x, upstream))
        y_ref, dx_ref = _step(reference, x, upstream, global_path=False)
        y, dx = _step(ours, x, upstream, global_path=True)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(dx, dx_ref, rtol=1e-5, atol=1e-5)
        assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
        expected = _params_and_buffers(reference)
        for name, value in _params_and_buffers(ours).items():
            torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-5, msg=name)
    reference.eval(), ours.eval()
    x = torch.randn(shape).to(device)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('device', DEVICES)
def test_bf16_autocast_matches_batch_norm_and_float64(one_rank_group, device):
    """Under autocast a convolution hands BN bf16; GlobalBN returns bf16 like BatchNorm, with float32 statistics."""
    torch.manual_seed(0)
    shape = (4, 5, 6, 7)
    reference, ours = _pair(shape, device=device)
    exact, _ = _pair(shape, dtype=torch.float64, device=device)
    exact.load_state_dict(reference.state_dict())
    x = (torch.randn(shape) * 3 + 1).bfloat16().to(device, memory_format=torch.channels_last)
    upstream = torch.randn(shape).bfloat16().to(device)
    y_ref, dx_ref = _step(reference, x, upstream, global_path=False, amp=True)
    y, dx = _step(ours, x, upstream, global_path=True, amp=True)
    y_64, dx_64 = _step(exact, x.double(), upstream.double(), global_path=False)
    assert y.dtype == y_ref.dtype == torch.bfloat16 and dx.dtype == torch.bfloat16
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, y_ref)  # bf16 tolerances
    assert relative_difference(y.double(), y_64) < 5e-3
    assert relative_difference(dx.double(), dx_64) < 1e-2  # dx rounded to bf16 once
    assert relative_difference(dx.float(), dx_ref.float()) < 1e-2
    for name in ('weight', 'bias'):  # accumulated in float32: closer to float64 than bf16 precision
        grad, grad_64 = getattr(ours, name).grad, getattr(exact, name).grad
        assert grad.dtype == torch.float32
        assert relative_difference(grad.double(), grad_64) < 1e-4, name
    for name in ('running_mean', 'running_var'):
        torch.testing.assert_close(getattr(ours, name), getattr(reference, name), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('device', DEVICES)
def test_gradient_only_for_parameters(one_rank_group, device):
    """An input that needs no gradient (an image) skips the input gradient; parameter gradients stay exact."""
    torch.manual_seed(0)
    reference, ours = _pair((8, 3, 4, 4), device=device)
    x = torch.randn(8, 3, 4, 4, device=device)
    for module, global_path in ((reference, False), (ours, True)):
        y = module._global_forward(x) if global_path else module(x)
        (y * torch.arange(y.numel(), device=device).view(y.shape)).sum().backward()
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ours.bias.grad, reference.bias.grad, rtol=1e-5, atol=1e-4)


def test_wrong_channel_count_is_named(one_rank_group):
    with pytest.raises(ValueError, match=r'GlobalBN\(3\) got 4 channels'):
        GlobalBatchNorm(3)._global_forward(torch.randn(2, 4))



def test_every_op_of_the_global_path_has_a_cuda_kernel(one_rank_group):
    """GlobalBN runs one code path on every device (issue: the former CUDA-only branch had never run in a test).
    Record every aten op of a forward + backward of the global path on CPU -- what CI's 2-rank tests run -- and
    check that each has a CUDA kernel (or a device-generic composite one): a CUDA input takes this same path."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name, overload = func._schema.name, func._schema.overload_name
            self.ops.add(f'{name}.{overload}' if overload else name)
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    _, ours = _pair((4, 5, 6, 7))
    x = torch.randn(4, 5, 6, 7, requires_grad=True)
    with Record() as record:
        ours._global_forward(x).backward(torch.randn(4, 5, 6, 7))
    assert {'aten::batch_norm_update_stats', 'aten::native_batch_norm_backward'} <= record.ops, record.ops
    keys = ('CUDA', 'CompositeExplicitAutograd', 'CompositeImplicitAutograd',
            'CompositeExplicitAutogradNonFunctional')
    no_cuda = sorted(op for op in record.ops
                     if not any(torch._C._dispatch_has_kernel_for_dispatch_key(op, k) for k in keys))
    assert no_cuda == [], f'ops of the global path without a CUDA kernel: {no_cuda}'
