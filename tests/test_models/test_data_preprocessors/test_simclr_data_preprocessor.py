"""Statistical and functional tests of the batched SimCLR augmentation (SimCLRDataPreprocessor)."""
import math
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from mmsimclr.datasets.transforms import ColorDistortion
from mmsimclr.models.data_preprocessors import SimCLRDataPreprocessor, gaussian_blur, shift_hue

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def ks_uniform(values, lo, hi) -> float:
    v = np.sort((np.asarray(values, dtype=np.float64) - lo) / (hi - lo))
    n = len(v)
    return max(np.max(np.arange(1, n + 1) / n - v), np.max(v - np.arange(n) / n))


def assert_rate(flags, p):
    flags = np.asarray(flags, dtype=np.float64)
    assert abs(flags.mean() - p) < 4 * math.sqrt(p * (1 - p) / flags.size), (flags.mean(), p)


def make(**kw) -> SimCLRDataPreprocessor:
    kw.setdefault('seed', 0)
    return SimCLRDataPreprocessor(mean=MEAN, std=STD, to_rgb=True, **kw)


def test_params_distributions():
    pre = make(num_views=8)
    n = 500
    p = pre.sample_params(torch.full((n, ), 1000.), torch.full((n, ), 1000.))
    assert p['x'].shape == (4000, ) and p['order'].shape == (4000, 4)
    area = (p['w'] * p['h'] / 1e6).numpy()
    log_r = torch.log(p['w'] / p['h']).numpy()
    assert area.min() >= 0.08 - 2e-3 and area.max() <= 1.0
    small = area < 0.7  # no rejection possible there on a square image
    bound = 1.95 / math.sqrt(small.sum())
    assert ks_uniform(area[small], 0.08, 0.7) < bound
    assert ks_uniform(log_r[small], math.log(3 / 4), math.log(4 / 3)) < bound
    assert_rate(p['flip'].numpy(), 0.5)
    assert_rate(p['jitter'].numpy(), 0.8)
    assert_rate(p['gray'].numpy(), 0.2)
    assert_rate(p['blur'].numpy(), 0.5)
    for key, lo, hi in [('brightness', 0.2, 1.8), ('contrast', 0.2, 1.8), ('saturation', 0.2, 1.8),
                        ('hue', -0.2, 0.2), ('sigma', 0.1, 2.0)]:
        v = p[key].numpy()
        assert lo - 1e-6 <= v.min() and v.max() <= hi + 1e-6
        assert ks_uniform(v, lo, hi) < 1.95 / math.sqrt(v.size), key
    assert (p['order'].sort(dim=1).values == torch.arange(4)).all()
    for op in range(4):
        assert_rate((p['order'][:, 0] == op).numpy(), 0.25)
    assert pre.kernel_size() == 23 and make(size=32).kernel_size() == 3


def test_cifar_strength_and_no_blur():
    pre = make(size=32, strength=0.5, blur_prob=0.)
    p = pre.sample_params(torch.full((2000, ), 32.), torch.full((2000, ), 32.))
    assert p['brightness'].min() >= 0.6 - 1e-6 and p['brightness'].max() <= 1.4 + 1e-6
    assert p['hue'].abs().max() <= 0.1 + 1e-6 and not p['blur'].any()


def test_boxes_fit_each_original_image_and_fallback():
    pre = make(num_views=4)
    heights = torch.tensor([375., 500., 10., 7.])
    widths = torch.tensor([500., 375., 1000., 3.])
    for _ in range(50):
        p = pre.sample_params(heights, widths)
        hh, ww = heights[p['index']], widths[p['index']]
        assert ((p['x'] >= 0) & (p['y'] >= 0) & (p['x'] + p['w'] <= ww) & (p['y'] + p['h'] <= hh)).all()
        assert (p['w'] >= 1).all() and (p['h'] >= 1).all()
        pano = p['index'] == 2  # 100:1, never fits: centred crop of ratio 4/3
        assert (p['w'][pano] == 13).all() and (p['h'][pano] == 10).all() and (p['x'][pano] == 493).all()


def test_independent_across_samples_and_views():
    pre = make(num_views=2)
    n, batches = 8, 400
    areas = torch.stack([
        (lambda p: (p['w'] * p['h'] / 1e4).view(2, n))(pre.sample_params(torch.full((n, ), 100.),
                                                                          torch.full((n, ), 100.)))
        for _ in range(batches)
    ])  # (batches, V, n)
    bound = 4 / math.sqrt(batches)
    a = areas.numpy()
    assert abs(np.corrcoef(a[:, 0, 0], a[:, 0, 1])[0, 1]) < bound  # two images of a batch
    assert abs(np.corrcoef(a[:, 0, 0], a[:, 1, 0])[0, 1]) < bound  # two views of one image
    assert abs(np.corrcoef(a[:-1, 0, 0], a[1:, 0, 0])[0, 1]) < bound  # successive batches
    assert len(np.unique(a[0].ravel())) > 10


def _batch(n=6, s=64, seed=0):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    small = torch.randint(0, 256, (n, 3, 8, 8), generator=g).float()
    images = torch.nn.functional.interpolate(small, size=(s, s), mode='bilinear').round().to(torch.uint8)
    samples = [DataSample(metainfo=dict(ori_shape=(375, 500))) for _ in range(n)]
    return dict(inputs=images, data_samples=samples)


def test_forward_outputs_views_and_is_reproducible():
    data = _batch()
    out = make(size=32, num_views=3)(data, training=True)
    views = out['inputs']
    assert isinstance(views, list) and len(views) == 3
    assert all(v.shape == (6, 3, 32, 32) and v.dtype == torch.float32 for v in views)
    assert len(out['data_samples']) == 6
    again = make(size=32, num_views=3)(data, training=True)['inputs']
    assert all(torch.equal(a, b) for a, b in zip(views, again))
    other = make(size=32, num_views=3, seed=1)(data, training=True)['inputs']
    assert not torch.equal(views[0], other[0])
    pre = make(size=32)
    first = pre(data, training=True)['inputs'][0]
    assert not torch.equal(first, pre(data, training=True)['inputs'][0])  # the stream advances
    assert not torch.equal(views[0], views[1])


def test_eval_and_cpu_views_pass_through():
    data = _batch()
    out = make()(data, training=False)['inputs']
    expected = (data['inputs'][:, [2, 1, 0]].float() - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(
        STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out, expected)
    views = [data['inputs'], data['inputs'].flip(-1)]
    out = make()(dict(inputs=views, data_samples=None), training=True)['inputs']
    assert len(out) == 2 and out[0].shape == (6, 3, 64, 64)


def _identity_params(k, **kw):
    p = dict(index=torch.zeros(k, dtype=torch.long), x=torch.zeros(k, dtype=torch.float64),
             y=torch.zeros(k, dtype=torch.float64), w=torch.full((k, ), 100., dtype=torch.float64),
             h=torch.full((k, ), 100., dtype=torch.float64), flip=torch.zeros(k, dtype=torch.bool),
             jitter=torch.zeros(k, dtype=torch.bool), order=torch.arange(4).repeat(k, 1),
             brightness=torch.ones(k), contrast=torch.ones(k), saturation=torch.ones(k), hue=torch.zeros(k),
             gray=torch.zeros(k, dtype=torch.bool), blur=torch.zeros(k, dtype=torch.bool), sigma=torch.ones(k))
    p.update(kw)
    return p


def test_crop_flip_gray_blur_are_applied_as_sampled():
    pre = make(size=32, num_views=1, blur_kernel_frac=0.25)  # kernel 9 on 32
    img = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    hw = (torch.tensor([100.]), torch.tensor([100.]))  # original 100x100 squashed to 32x32
    out = pre.augment(img, _identity_params(1), *hw)
    torch.testing.assert_close(out, img, atol=1e-5, rtol=0)  # the whole image at the same size
    half = pre.augment(img, _identity_params(1, x=torch.tensor([50.], dtype=torch.float64),
                                             w=torch.tensor([50.], dtype=torch.float64)), *hw)
    ref = torch.nn.functional.interpolate(img[..., 16:], size=(32, 32), mode='bilinear', align_corners=False)
    assert (half - ref).abs().mean() < 0.02  # right half, stretched
    flipped = pre.augment(img, _identity_params(1, flip=torch.tensor([True])), *hw)
    torch.testing.assert_close(flipped, img.flip(-1), atol=1e-5, rtol=0)
    gray = pre.augment(img, _identity_params(1, gray=torch.tensor([True])), *hw)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    blurred = pre.augment(img, _identity_params(1, blur=torch.tensor([True]), sigma=torch.tensor([1.5])), *hw)
    ref = cv2.GaussianBlur(img[0].permute(1, 2, 0).numpy(), (9, 9), 1.5, borderType=cv2.BORDER_REFLECT_101)
    torch.testing.assert_close(blurred[0].permute(1, 2, 0), torch.from_numpy(ref), atol=1e-4, rtol=0)


def test_per_sample_blur_uses_each_sigma():
    x = torch.zeros(2, 1, 31, 31)
    x[:, :, 15, 15] = 1.
    out = gaussian_blur(x, torch.tensor([0.5, 3.0]), 23)
    assert out[0, 0, 15, 15] > 0.3 > out[1, 0, 15, 15]
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), torch.ones(2))


@pytest.mark.parametrize('op,value', [('brightness', 1.4), ('contrast', 0.5), ('saturation', 1.6), ('hue', 0.15),
                                      ('hue', -0.2)])
def test_tensor_colour_ops_match_the_cpu_path(op, value):
    """Both paths implement the same formulas: uint8 OpenCV result vs float tensor result within 8-bit error."""
    rng = np.random.RandomState(0)
    bgr = cv2.resize(rng.randint(0, 256, (6, 6, 3), dtype=np.uint8), (48, 48), interpolation=cv2.INTER_LINEAR)
    params = dict(jitter=True, order=(0, 1, 2, 3), brightness=1., contrast=1., saturation=1., hue=0., gray=False)
    params[op] = value
    cpu = ColorDistortion().apply(bgr, params)[..., ::-1].astype(np.float64)  # -> RGB
    x = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1)[None].float() / 255.
    k = {op: torch.tensor([value])}
    gpu = make(size=48, num_views=1).augment(
        x, _identity_params(1, jitter=torch.tensor([True]), w=torch.tensor([48.], dtype=torch.float64),
                            h=torch.tensor([48.], dtype=torch.float64), **k),
        torch.tensor([48.]), torch.tensor([48.]))
    diff = np.abs(gpu[0].permute(1, 2, 0).numpy() * 255. - cpu)
    assert diff.mean() < 1.5 and diff.max() <= 10, (diff.mean(), diff.max())


def test_shift_hue_identity_and_rotation():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(shift_hue(x, torch.zeros(4)), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(shift_hue(x, torch.ones(4)), x, atol=1e-5, rtol=0)
    red = torch.tensor([1., 0., 0.]).view(1, 3, 1, 1)
    torch.testing.assert_close(shift_hue(red, torch.tensor([1 / 3])), torch.tensor([0., 1., 0.]).view(1, 3, 1, 1))


def test_tiny_batchaug_config_trains_one_step(repo_root, tiny_data):
    from mmengine.config import Config
    from mmengine.dataset import default_collate

    from mmsimclr.registry import DATASETS, MODELS
    cfg = Config.fromfile(osp.join(repo_root, 'configs/simclr_r18_1xb16-coslr-2e_tiny_batchaug.py'))
    cfg.train_dataloader.dataset.data_root = tiny_data
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = default_collate([dataset[i] for i in range(4)])
    assert batch['inputs'].dtype == torch.uint8 and batch['inputs'].shape == (4, 3, 32, 32)
    model = MODELS.build(cfg.model)
    assert isinstance(model.data_preprocessor, SimCLRDataPreprocessor)
    data = model.data_preprocessor(batch, training=True)
    assert len(data['inputs']) == 2 and data['inputs'][0].shape == (4, 3, 32, 32)
    loss = model(**data, mode='loss')['loss']
    assert torch.isfinite(loss)


def _reference_views(pre, images, params, heights, widths):
    """Row by row, op by op, with the per-op formulas, in each row's sampled order: the oracle of the batched,
    masked-by-``torch.where`` path."""
    rows = []
    s_h, s_w = images.shape[-2:]
    ops = {0: pre._brightness, 1: pre._contrast, 2: pre._saturation, 3: pre._hue}
    names = {0: 'brightness', 1: 'contrast', 2: 'saturation', 3: 'hue'}
    for k in range(params['x'].numel()):
        i = int(params['index'][k])
        sx, sy = s_w / float(widths[i]), s_h / float(heights[i])
        x1, y1 = float(params['x'][k]) * sx, float(params['y'][k]) * sy
        x2 = (float(params['x'][k]) + float(params['w'][k])) * sx
        y2 = (float(params['y'][k]) + float(params['h'][k])) * sy
        box = torch.tensor([[0., x1, y1, x2, y2]])
        from torchvision.ops import roi_align
        v = roi_align(images[i:i + 1], box, (pre.size, pre.size), 1.0, -1, True)
        if params['flip'][k]:
            v = v.flip(-1)
        if params['jitter'][k]:
            for op in params['order'][k].tolist():
                v = ops[op](v, params[names[op]][k:k + 1])
        if params['gray'][k]:
            v = _gray_ref(v)
        rows.append(v)
    return torch.cat(rows)


def _gray_ref(v):
    g = 0.299 * v[:, 0] + 0.587 * v[:, 1] + 0.114 * v[:, 2]
    return g.unsqueeze(1).expand(-1, 3, -1, -1)


def test_batched_views_equal_the_row_by_row_reference_blur_identity_where_not_blurred():
    """Every row gets exactly its own ops in its own order; rows not blurred are untouched by the blur (bit for
    bit), blurred rows are the same Gaussian (cv2 with the same sigma and kernel side) of the unblurred view."""
    pre = make(size=40, num_views=3, blur_kernel_frac=0.2)  # kernel 9
    n = 8
    images = torch.rand(n, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    heights, widths = torch.full((n, ), 300.), torch.full((n, ), 400.)
    params = pre.sample_params(heights, widths)
    assert 0 < int(params['blur'].sum()) < 3 * n and 0 < int(params['jitter'].sum()) < 3 * n
    out = pre.augment(images, params, heights, widths)
    no_blur = pre.augment(images, dict(params, blur=torch.zeros_like(params['blur'])), heights, widths)
    torch.testing.assert_close(no_blur, _reference_views(pre, images, params, heights, widths), atol=2e-6, rtol=0)
    kept = ~params['blur']
    assert torch.equal(out[kept], no_blur[kept])
    for k in params['blur'].nonzero().squeeze(1).tolist():
        ref = cv2.GaussianBlur(no_blur[k].permute(1, 2, 0).numpy(), (9, 9), float(params['sigma'][k]),
                               borderType=cv2.BORDER_REFLECT_101)
        torch.testing.assert_close(out[k].permute(1, 2, 0), torch.from_numpy(ref), atol=2e-6, rtol=0)
    assert not torch.equal(out[params['blur']], no_blur[params['blur']])


class _ShapeLog(torch.utils._python_dispatch.TorchDispatchMode):
    """(op, input shapes) of every aten op, in order."""

    def __init__(self):
        super().__init__()
        self.log = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        shapes = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
        self.log.append((str(func), shapes))
        return func(*args, **(kwargs or {}))


def test_kernels_and_shapes_are_the_same_every_batch():
    """cudnn.benchmark tunes each new shape: the batched path runs the same ops on the same shapes whatever the
    number of flipped / jittered / gray / blurred views of the batch."""
    pre = make(size=32, num_views=2, blur_kernel_frac=0.2)
    data = _batch(n=6)
    logs, blurred = [], set()
    for _ in range(4):
        state = pre.generator.get_state()
        blurred.add(int(pre.sample_params(torch.full((6, ), 375.), torch.full((6, ), 500.))['blur'].sum()))
        pre.generator.set_state(state)
        with _ShapeLog() as shapes:
            pre(dict(data), training=True)
        logs.append(shapes.log)
    assert len(blurred) > 1  # the batches differ in their blur counts ...
    assert all(log == logs[0] for log in logs[1:])  # ... and not in their kernels or shapes
    assert any('convolution' in op for op, _ in logs[0])


def test_augmentation_is_float32_and_unchanged_under_autocast():
    """mmengine's AMP runs the data preprocessor inside autocast: the views are the float32 ones (the bf16 blur
    used to crash the index-put); only the model after it runs in low precision."""
    data = _batch()
    expected = make(size=32)(dict(data), training=True)['inputs']
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = make(size=32)(dict(data), training=True)['inputs']
    assert all(g.dtype == torch.float32 for g in got)
    assert all(torch.equal(g, e) for g, e in zip(got, expected))


def test_plan_is_one_float32_tensor_and_the_input_copy_is_non_blocking():
    pre = make(num_views=2)
    p = pre.sample_params(torch.full((5, ), 375.), torch.full((5, ), 500.))
    plan = pre.make_plan(p, torch.full((5, ), 375.), torch.full((5, ), 500.), 320, 320)
    assert plan.shape == (10, 20) and plan.dtype == torch.float32 and plan.device.type == 'cpu'
    assert pre._non_blocking and not make(non_blocking=False)._non_blocking
