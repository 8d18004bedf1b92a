"""Batched SimCLR augmentation on the training device.

The CPU pipeline (``RandomResizedCropFlip`` -> ``ColorDistortion`` -> ``RandomGaussianBlur``, see
``mmsimclr.datasets.transforms``) makes every view in the data loader. With this preprocessor the loader only
decodes each image and squashes it to one fixed ``S x S`` size (``LoadImageColor`` + ``Resize(keep_ratio=False)``,
see ``configs/_base_/datasets/*_batchaug.py``); all views are then made here, batched, on the device of the model
(GPU when there is one), with independent random parameters per sample and view, from the same distributions as the
CPU path (paper, Appendix A):

* crop: area ``~ U[0.08, 1]`` of the *original* image (its ``ori_shape``; the squash is undone by mapping the box
  into the ``S x S`` tensor), ``log(w / h) ~ U[log 3/4, log 4/3]``, 10 tries then a centred fallback; cut and
  resized with ``torchvision.ops.roi_align`` (bilinear, and with the adaptive sampling ratio it averages
  ``ceil(box / size)`` samples per output pixel, i.e. it is antialiased when shrinking); horizontal flip p = 0.5;
* colour jitter with p = 0.8 (brightness, contrast, saturation ``~ U[max(0, 1 - 0.8s), 1 + 0.8s]``, hue shift
  ``~ U[-0.2s, 0.2s]`` turns, per-sample random order), grayscale p = 0.2;
* Gaussian blur p = 0.5, ``sigma ~ U[0.1, 2.0]``, kernel side ``2 * (int(0.1 * size) // 2) + 1``, reflected
  borders, one depthwise (grouped) separable convolution.

Random parameters come from this module's own CPU ``torch.Generator`` (seeded from ``seed`` or, by default, from
``torch.initial_seed()`` which mmengine's ``randomness.seed`` sets, plus the process rank so ranks differ); they are
drawn on the CPU (a few hundred numbers, ``sample_params``), packed into one ``(K, 20)`` plan (``make_plan``) and
moved to the device in one copy, pinned and non-blocking on CUDA.

GPU-friendly by construction: a training step makes no device -> host synchronisation (no ``.item()``, no
``nonzero`` / boolean-mask indexing, no tensor from Python data; ``tests/sync_counter.py`` counts them) and every
kernel sees the same shapes each step: each op (flip, the colour blends, hue, grayscale, blur) runs on all views and
``torch.where`` keeps its result for the views whose flag is set, the others stay bit for bit as they were. That
costs the work on every view rather than on the sampled fraction (blur: all views instead of half), in exchange for
no host round trip and for ``cudnn.benchmark`` tuning each shape once. Augmentation always runs in float32, also
inside mmengine's AMP autocast (which wraps the data preprocessor).
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import get_rank
from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor
from torchvision.ops import roi_align

from mmsimclr.registry import MODELS

_LUMA_RGB = (0.299, 0.587, 0.114)

# columns of SimCLRDataPreprocessor.make_plan's (K, 20) plan
PLAN_ROI = slice(0, 5)
PLAN_FLIP, PLAN_GRAY, PLAN_BLUR, PLAN_JITTER, PLAN_SIGMA, PLAN_HUE = 5, 6, 7, 8, 9, 10
PLAN_CODES, PLAN_PRE, PLAN_POST = slice(11, 14), slice(14, 17), slice(17, 20)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB -> ``(B, 1, H, W)`` luma."""
    return (x[:, 0:1] * _LUMA_RGB[0] + x[:, 1:2] * _LUMA_RGB[1] + x[:, 2:3] * _LUMA_RGB[2])


def _bcast(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1).to(torch.float32)


def shift_hue(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of ``(B, 3, H, W)`` RGB images in [0, 1] by ``delta`` ``(B,)`` turns.

    RGB -> HSV with hue in sextants, shift, then back with the closed form
    ``c_n = v - v * s * clamp(min(k, 4 - k), 0, 1)``, ``k = (n + 6 h) mod 6``, ``n = 5, 3, 1`` for R, G, B.
    """
    r, g, b = x.unbind(dim=1)
    maxc = torch.maximum(torch.maximum(r, g), b)  # element-wise: max / min over a dim of 3 are slow reductions
    minc = torch.minimum(torch.minimum(r, g), b)
    chroma = maxc - minc
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(r == maxc, (g - b) / safe,  # the first maximal channel, as max(dim=1)'s index
                      torch.where(g == maxc, (b - r) / safe + 2., (r - g) / safe + 4.))
    hue = torch.where(chroma > 0, hue, torch.zeros_like(hue))  # sextants, in (-1, 5]
    hue = torch.remainder(hue + 6. * delta.view(-1, 1, 1).to(x.dtype), 6.)
    sat_v = chroma  # v * s
    n = torch.arange(5., 0., -2., device=x.device, dtype=x.dtype).view(1, 3, 1, 1)  # 5, 3, 1: a factory, not a copy
    k = torch.remainder(n + hue.unsqueeze(1), 6.)
    weight = torch.clamp(torch.minimum(k, 4. - k), 0., 1.)
    return maxc.unsqueeze(1) - sat_v.unsqueeze(1) * weight


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur each of ``(B, C, H, W)`` with its own ``sigma`` ``(B,)``: one separable, grouped convolution over all
    ``B * C`` planes, odd ``kernel_size``, reflected borders."""
    b, c, h, w = x.shape
    radius = kernel_size // 2
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-t.view(1, -1) ** 2 / (2. * sigma.view(-1, 1).to(x.dtype) ** 2))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).unsqueeze(1).expand(b, c, kernel_size)
    kernel = kernel.reshape(b * c, kernel_size)
    mode = 'reflect' if radius < min(h, w) else 'replicate'
    planes = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode=mode)
    planes = F.conv2d(planes, kernel.view(b * c, 1, 1, kernel_size), groups=b * c)
    planes = F.conv2d(planes, kernel.view(b * c, 1, kernel_size, 1), groups=b * c)
    return planes.view(b, c, h, w)


@MODELS.register_module()
class SimCLRDataPreprocessor(SelfSupDataPreprocessor):
    """``SelfSupDataPreprocessor`` that makes the SimCLR views itself, batched.

    Input (training): ``data['inputs']`` ``(N, 3, S, S)`` uint8 (BGR with ``to_rgb=True``, as the loaders give),
    ``data['data_samples']`` with ``ori_shape`` in their metainfo (absent: the tensor is taken as the original).
    Output: ``{'inputs': [V tensors (N, 3, size, size)], 'data_samples': ...}``, normalised with ``mean``/``std``
    (0-255 scale), i.e. what ``SimCLR.loss`` expects. Anything else (a list of views made on the CPU, or
    ``training=False``) gives what ``SelfSupDataPreprocessor`` gives (its BGR -> RGB swap done as a flip, which
    needs no host -> device copy of an index list).

    Each probability below is drawn independently per view; an operation whose probability is 0 is not run at all.

    Args:
        mean, std (Sequence[float], optional): per-channel mean and standard deviation on the 0-255 scale, in the
            output's channel order, as ``SelfSupDataPreprocessor``'s. Defaults to None: no normalisation.
        to_rgb (bool): swap the channels from BGR (as the loaders give) to RGB, as ``SelfSupDataPreprocessor``'s
            (here as a flip of dim 1, which needs 3 channels). Defaults to True.
        num_views (int): ``V``, the views made of each image (>= 1). Defaults to 2, SimCLR's pair.
        size (int): side in pixels of the square output views. Defaults to 224 (ImageNet; 32 for CIFAR).
        scale (Sequence[float]): ``(min, max)`` of the crop area as a fraction of the original image's area,
            drawn uniformly. Defaults to ``(0.08, 1.0)`` (the paper's).
        ratio (Sequence[float]): ``(min, max)`` of the crop's aspect ratio ``w / h``, drawn log-uniformly; after
            10 crops that do not fit the image, the largest centred crop with the ratio clamped into this range.
            Defaults to ``(3/4, 4/3)`` (the paper's).
        flip_prob (float): probability of a horizontal flip. Defaults to 0.5.
        strength (float): colour distortion strength ``s``: brightness, contrast and saturation factors
            ``~ U[max(0, 1 - 0.8s), 1 + 0.8s]``, hue shift ``~ U[-0.2s, 0.2s]`` turns. Defaults to 1.0 (the
            paper's ImageNet value; it uses 0.5 for CIFAR-10).
        jitter_prob (float): probability of the colour jitter (the four operations in random order). Defaults to
            0.8 (the paper's).
        gray_prob (float): probability of converting the view to grayscale (luma, on all 3 channels). Defaults to
            0.2 (the paper's).
        blur_prob (float): probability of the Gaussian blur. Defaults to 0.5 (the paper's, for ImageNet; the
            CIFAR configs set 0).
        blur_sigma (Sequence[float]): ``(min, max)`` of the blur's standard deviation in output pixels, drawn
            uniformly. Defaults to ``(0.1, 2.0)`` (the paper's).
        blur_kernel_frac (float): kernel side as a fraction of ``size``, made odd:
            ``2 * (int(blur_kernel_frac * size) // 2) + 1`` (23 for 224); a side of 1 turns the blur off.
            Defaults to 0.1 (the paper's 10% of the image side).
        seed (int, optional): seed of the augmentation generator; ``None``: ``torch.initial_seed()`` at the first
            batch. The rank is added either way.
        **kwargs: to ``SelfSupDataPreprocessor``; ``non_blocking`` defaults to True here (the loader's pinned
            uint8 batch goes to the GPU without making the host wait).
    """

    def __init__(self,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 to_rgb: bool = True,
                 num_views: int = 2,
                 size: int = 224,
                 scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3. / 4., 4. / 3.),
                 flip_prob: float = 0.5,
                 strength: float = 1.0,
                 jitter_prob: float = 0.8,
                 gray_prob: float = 0.2,
                 blur_prob: float = 0.5,
                 blur_sigma: Sequence[float] = (0.1, 2.0),
                 blur_kernel_frac: float = 0.1,
                 seed: Optional[int] = None,
                 **kwargs):
        kwargs.setdefault('non_blocking', True)
        super().__init__(mean=mean, std=std, to_rgb=to_rgb, **kwargs)
        if num_views < 1:
            raise ValueError('num_views must be >= 1')
        self.num_views = num_views
        self.size = int(size)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.flip_prob = flip_prob
        self.strength = strength
        self.jitter_prob = jitter_prob
        self.gray_prob = gray_prob
        self.blur_prob = blur_prob
        self.blur_sigma = tuple(blur_sigma)
        self.blur_kernel_frac = blur_kernel_frac
        self.seed = seed
        self._generator: Optional[torch.Generator] = None

    # ---------------------------------------------------------------- randomness
    @property
    def generator(self) -> torch.Generator:
        if self._generator is None:
            base = self.seed if self.seed is not None else torch.initial_seed()
            self._generator = torch.Generator().manual_seed((int(base) + 1_000_003 * get_rank()) % (2 ** 63))
        return self._generator

    def kernel_size(self) -> int:
        """Blur kernel side for the output size: ``2 * (int(0.1 * size) // 2) + 1`` (23 for 224)."""
        return 2 * (int(self.blur_kernel_frac * self.size) // 2) + 1

    def sample_params(self, heights: torch.Tensor, widths: torch.Tensor,
                      generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """Parameters of all ``K = V * N`` views of ``N`` images of original sizes ``heights``/``widths`` ``(N,)``.

        Row ``k`` is view ``k // N`` of image ``k % N``. Returns CPU tensors of length ``K``: ``index`` (image),
        ``x, y, w, h`` (crop box in original pixels), ``flip``, ``jitter``, ``order`` ``(K, 4)`` (a permutation of
        brightness, contrast, saturation, hue), ``brightness, contrast, saturation, hue``, ``gray``, ``blur``,
        ``sigma``.
        """
        g = self.generator if generator is None else generator
        n = heights.numel()
        k = n * self.num_views
        hs = heights.to(torch.float64).repeat(self.num_views)
        ws = widths.to(torch.float64).repeat(self.num_views)

        def uniform(lo, hi, *shape):
            return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)

        attempts = 10
        area = uniform(self.scale[0], self.scale[1], k, attempts) * (hs * ws).unsqueeze(1)
        r = torch.exp(uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), k, attempts))
        w_try = torch.round(torch.sqrt(area * r))
        h_try = torch.round(torch.sqrt(area / r))
        ok = (w_try >= 1) & (h_try >= 1) & (w_try <= ws.unsqueeze(1)) & (h_try <= hs.unsqueeze(1))
        first = ok.to(torch.int8).argmax(dim=1, keepdim=True)  # first fitting try
        found = ok.any(dim=1)
        # fallback: largest centred crop with the ratio clamped into range
        in_ratio = ws / hs
        fb_w = torch.where(in_ratio > self.ratio[1], torch.round(hs * self.ratio[1]).clamp(1, None), ws)
        fb_h = torch.where(in_ratio < self.ratio[0], torch.round(ws / self.ratio[0]).clamp(1, None), hs)
        fb_w, fb_h = torch.minimum(fb_w, ws), torch.minimum(fb_h, hs)
        w = torch.where(found, w_try.gather(1, first).squeeze(1), fb_w)
        h = torch.where(found, h_try.gather(1, first).squeeze(1), fb_h)
        u = torch.rand(k, 2, generator=g, dtype=torch.float64)
        x = torch.where(found, torch.minimum(torch.floor(u[:, 0] * (ws - w + 1)), ws - w), torch.floor((ws - w) / 2))
        y = torch.where(found, torch.minimum(torch.floor(u[:, 1] * (hs - h + 1)), hs - h), torch.floor((hs - h) / 2))

        m, d = 0.8 * self.strength, 0.2 * self.strength
        coins = torch.rand(k, 4, generator=g)
        return dict(
            index=torch.arange(n).repeat(self.num_views),
            x=x, y=y, w=w, h=h,
            flip=coins[:, 0] < self.flip_prob,
            jitter=coins[:, 1] < self.jitter_prob,
            order=torch.rand(k, 4, generator=g).argsort(dim=1),
            brightness=uniform(max(0., 1. - m), 1. + m, k).float(),
            contrast=uniform(max(0., 1. - m), 1. + m, k).float(),
            saturation=uniform(max(0., 1. - m), 1. + m, k).float(),
            hue=uniform(-d, d, k).float(),
            gray=coins[:, 2] < self.gray_prob,
            blur=coins[:, 3] < self.blur_prob,
            sigma=uniform(self.blur_sigma[0], self.blur_sigma[1], k).float(),
        )

    # ---------------------------------------------------------------- augmentation
    def make_plan(self, params: Dict[str, torch.Tensor], heights: torch.Tensor, widths: torch.Tensor, s_h: int,
                  s_w: int) -> torch.Tensor:
        """Everything the device needs from ``params`` (CPU, see ``sample_params``) in ONE ``(K, 20)`` float32 CPU
        tensor, so that a step makes a single host -> device copy (pinned and non-blocking on CUDA) and the device
        never asks the host anything. Columns (``PLAN_*``): the ``roi_align`` box ``(image, x1, y1, x2, y2)`` in
        ``S_h x S_w`` tensor pixels; flip, gray, blur, jitter (0/1); sigma; hue shift; then the colour jitter as
        ``brightness/contrast/saturation`` blends in the sampled order with the hue shift taken out
        (``PLAN_CODES``: op 0/1/2 of each of the 3 slots) and each slot's factor before (``PLAN_PRE``) and after
        (``PLAN_POST``) the hue shift: the factor where the op runs there, 1 (identity) elsewhere."""
        index = params['index']
        sx = s_w / widths.to(torch.float64)[index]
        sy = s_h / heights.to(torch.float64)[index]
        rois = torch.stack([index.to(torch.float64), params['x'] * sx, params['y'] * sy,
                            (params['x'] + params['w']) * sx, (params['y'] + params['h']) * sy], dim=1)
        order = params['order']  # (K, 4): op of each step; 0-2 blends, 3 hue
        is_hue = (order == 3).to(torch.int64)
        hue_step = is_hue.argmax(dim=1, keepdim=True)  # (K, 1)
        codes = order.gather(1, is_hue.argsort(dim=1, stable=True))[:, :3]  # the blends, in order
        factors = torch.stack([params['brightness'], params['contrast'], params['saturation']], dim=1)
        factors = factors.to(torch.float32).gather(1, codes)
        slot = torch.arange(3).view(1, 3)
        jitter = params['jitter'].view(-1, 1)
        pre = torch.where(jitter & (slot < hue_step), factors, 1.)
        post = torch.where(jitter & (slot >= hue_step), factors, 1.)
        flags = torch.stack([params['flip'], params['gray'], params['blur'], params['jitter']], dim=1)
        return torch.cat([rois.to(torch.float32), flags.to(torch.float32),
                          params['sigma'].to(torch.float32).view(-1, 1), params['hue'].to(torch.float32).view(-1, 1),
                          codes.to(torch.float32), pre, post], dim=1)

    def augment(self, images: torch.Tensor, params: Dict[str, torch.Tensor], heights: torch.Tensor,
                widths: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S_h, S_w)`` float RGB in [0, 1] (squashed originals of sizes ``heights x widths``) ->
        ``(V * N, 3, size, size)`` float32 RGB in [0, 1], row ``k`` made with row ``k`` of ``params``.

        Static shapes, no host synchronisation: every op runs on all ``K`` rows and ``torch.where`` keeps its
        result only where the row's flag says so (identity elsewhere, bit for bit), so the kernels and their
        shapes are the same every step (``cudnn.benchmark`` tunes once) and no row count is read back. Runs in
        float32 whatever the surrounding autocast (mmengine's AMP wraps the data preprocessor in it)."""
        dev = images.device
        plan = self.make_plan(params, heights, widths, images.shape[-2], images.shape[-1])
        if dev.type == 'cuda':
            plan = plan.pin_memory().to(dev, non_blocking=True)
        else:
            plan = plan.to(dev)
        with torch.autocast(dev.type, enabled=False):
            return self._augment_planned(images.float(), plan)

    def _augment_planned(self, images: torch.Tensor, plan: torch.Tensor) -> torch.Tensor:
        def flag(col: int) -> torch.Tensor:
            return (plan[:, col] > 0.5).view(-1, 1, 1, 1)

        out = roi_align(images, plan[:, PLAN_ROI], (self.size, self.size), spatial_scale=1.0, sampling_ratio=-1,
                        aligned=True)
        if self.flip_prob > 0:
            out = torch.where(flag(PLAN_FLIP), out.flip(-1), out)
        if self.jitter_prob > 0:
            codes = plan[:, PLAN_CODES]
            for j in range(3):
                out = self._blend(out, codes[:, j], plan[:, PLAN_PRE.start + j])
            out = torch.where(flag(PLAN_JITTER), shift_hue(out, plan[:, PLAN_HUE]).clamp_(0., 1.), out)
            for j in range(3):
                out = self._blend(out, codes[:, j], plan[:, PLAN_POST.start + j])
        if self.gray_prob > 0:
            out = torch.where(flag(PLAN_GRAY), _gray(out).expand(-1, 3, -1, -1), out)
        ksize = self.kernel_size()
        if ksize > 1 and self.blur_prob > 0:  # all rows blurred (static shapes), the unblurred ones kept as they were
            out = torch.where(flag(PLAN_BLUR), gaussian_blur(out, plan[:, PLAN_SIGMA], ksize), out)
        return out

    @staticmethod
    def _blend(x: torch.Tensor, code: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """``clamp(t + f (x - t))`` per row (``torch.lerp``, one pass), ``t`` = 0 (brightness, ``code`` 0), the mean
        luma (contrast, 1) or the luma image (saturation, 2); ``f = 1`` gives ``x`` (in [0, 1]) exactly."""
        gray = _gray(x)
        code = code.view(-1, 1, 1, 1)
        # t = gray * [code == 2] + mean * [code == 1]: exact (products with 0 / 1), one op
        target = torch.addcmul(gray.mean(dim=(1, 2, 3), keepdim=True) * (code == 1.), gray, code == 2.)
        return torch.lerp(target, x, _bcast(f)).clamp_(0., 1.)

    @staticmethod
    def _brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return (x * _bcast(f)).clamp_(0., 1.)

    @staticmethod
    def _contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
        f = _bcast(f)
        return (x * f + (1. - f) * mean).clamp_(0., 1.)

    @staticmethod
    def _saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        f = _bcast(f)
        return (x * f + (1. - f) * _gray(x)).clamp_(0., 1.)

    @staticmethod
    def _hue(x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return shift_hue(x, d).clamp_(0., 1.)

    # ---------------------------------------------------------------- entry point
    def _original_sizes(self, data_samples, n: int, s_h: int, s_w: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(N,)`` float64 CPU heights and widths from the samples' ``ori_shape`` (else the tensor's size): host
        data, written through the numpy view of a CPU tensor (no tensor op per sample)."""
        sizes = torch.empty((n, 2), dtype=torch.float64)
        view = sizes.numpy()
        view[:] = (float(s_h), float(s_w))
        for i, sample in enumerate(data_samples or []):
            shape = sample.metainfo.get('ori_shape') if hasattr(sample, 'metainfo') else None
            if shape is not None:
                view[i] = shape[:2]
        return sizes[:, 0], sizes[:, 1]

    def _to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        """BGR -> RGB as a flip of the channel dim: ``x[:, [2, 1, 0]]`` (mmpretrain's) makes a tensor from the
        Python list and copies it to the device, blocking the host, at every call."""
        if not self._channel_conversion:
            return x
        if x.dim() < 2 or x.shape[1] != 3:
            raise ValueError(f'SimCLRDataPreprocessor: to_rgb=True swaps 3 colour channels (dim 1) but got inputs '
                             f'of shape {tuple(x.shape)}; give (N, 3, H, W) images or set to_rgb=False')
        return x.flip(1)

    def forward(self, data: dict, training: bool = False) -> dict:
        if not isinstance(data, dict) or 'inputs' not in data:
            raise TypeError('SimCLRDataPreprocessor expects the dict of default_collate ({"inputs": ..., '
                            f'"data_samples": ...}}), got {type(data).__name__}')
        inputs = data['inputs']
        if not training or not isinstance(inputs, torch.Tensor) or inputs.dim() != 4:
            # views made on the CPU (a list) or evaluation: what SelfSupDataPreprocessor returns
            data = self.cast_data(data)

            def prepare(x: torch.Tensor) -> torch.Tensor:
                x = self._to_rgb(x).float()
                return (x - self.mean) / self.std if self._enable_normalize else x

            inputs = data['inputs']
            inputs = [prepare(x) for x in inputs] if isinstance(inputs, (list, tuple)) else prepare(inputs)
            return {'inputs': inputs, 'data_samples': data.get('data_samples')}
        data = self.cast_data(data)
        images, data_samples = self._to_rgb(data['inputs']), data.get('data_samples')
        n, _, s_h, s_w = images.shape
        heights, widths = self._original_sizes(data_samples, n, s_h, s_w)
        with torch.autocast(images.device.type, enabled=False):
            images = images.float() / 255.  # 0-255 scale (uint8 from the loader), as SelfSupDataPreprocessor's
            views = self.augment(images, self.sample_params(heights, widths), heights, widths) * 255.
            if self._enable_normalize:
                views = (views - self.mean) / self.std
        views = views.view(self.num_views, n, *views.shape[1:])
        return {'inputs': list(views.unbind(0)), 'data_samples': data_samples}
