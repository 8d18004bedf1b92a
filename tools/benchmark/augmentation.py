"""Throughput of SimCLR's two-view augmentation: mmsimclr's CPU pipeline, mmsimclr's batched path and mmpretrain's
pipeline, on the same JPEGs in one run.

* ``mmsimclr-cpu``: ``train_pipeline`` of ``configs/_base_/datasets/imagenet_bs256_simclr.py`` (``LoadImageColor``
  + ``MultiView(RandomResizedCropFlip, ColorDistortion, RandomGaussianBlur)`` + ``PackInputs``), per image.
* ``mmsimclr-batched[-<device>]``: ``train_pipeline`` of ``imagenet_bs256_simclr_batchaug.py`` (decode + squash to
  320x320) per image, ``default_collate``, then ``SimCLRDataPreprocessor`` (both views, batched) on the device;
  the loader part and the device part are also reported separately.
* ``mmpretrain``: ``train_pipeline`` of mmpretrain's ``imagenet_bs32_simclr.py`` (``LoadImageFromFile`` +
  ``MultiView`` + ``PackInputs``, with mmpretrain's view pipeline), all mmpretrain's code, with ONE change: the
  ``ColorJitter`` hue range is [0, 0.2] instead of [-0.2, 0.2] (mmcv 2.2.0's ``adjust_hue`` raises on numpy 2 for a
  negative shift; its cost does not depend on the sign).

All run in this single process; the rounds interleave the pipelines (A, B, C, A, B, C, ...) so that load from other
jobs on a shared machine hits them alike, and the median images/s over rounds is reported with ratios to
mmpretrain. Images: ~500x375 JPEGs (quality 90) made from CIFAR-10 pictures (bicubic upscaling plus mild noise)
when ``--cifar`` exists, else smooth noise with shapes.

    python tools/benchmark/augmentation.py [--num-images 64] [--rounds 5] [--threads 1]
"""
import argparse
import os.path as osp
import statistics
import tarfile
import tempfile
import time

import cv2
import numpy as np
import torch

# the repository, for its config files (code is imported as installed)
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# the shared CIFAR-10 JPEG copy beside the checkout (as quality_cifar10.py looks for it)
CIFAR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))),
                     'shared', 'data', 'cifar10-jpeg.tar.gz')


def make_images(out_dir: str, num: int, cifar: str, seed: int = 0):
    """Write ``num`` 500x375 JPEGs to ``out_dir``; return their paths."""
    rng = np.random.default_rng(seed)
    sources = []
    if cifar and osp.exists(cifar):
        with tarfile.open(cifar) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith('.jpg') and '/train/' in member.name:
                    data = tar.extractfile(member).read()
                    sources.append(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
                    if len(sources) >= num:
                        break
    paths = []
    for i in range(num):
        if i < len(sources):
            img = cv2.resize(sources[i], (500, 375), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        else:  # smooth noise + shapes
            img = cv2.resize(rng.uniform(0, 255, (12, 16, 3)).astype(np.float32), (500, 375),
                             interpolation=cv2.INTER_CUBIC)
            for _ in range(6):
                color = [float(c) for c in rng.uniform(0, 255, 3)]
                center = (int(rng.integers(0, 500)), int(rng.integers(0, 375)))
                cv2.circle(img, center, int(rng.integers(10, 120)), color, -1)
        img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
        path = osp.join(out_dir, f'{i:05d}.jpg')
        cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def _walk(transform):
    """All transforms nested in ``transform`` (Compose, MultiView, RandomApply keep them in ``.transforms``)."""
    yield transform
    inner = getattr(transform, 'transforms', None)
    if inner is not None and not isinstance(inner, (str, bytes)):
        for t in (inner if isinstance(inner, (list, tuple)) else [inner]):
            yield from _walk(t)


def _non_negative_hue(node) -> None:
    """Every ``ColorJitter`` config under ``node`` gets the hue range ``[0, hue]`` instead of ``[-hue, hue]``."""
    if isinstance(node, dict):
        if node.get('type') == 'ColorJitter':
            node['hue'] = (0.0, node['hue'])
        for value in node.values():
            _non_negative_hue(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _non_negative_hue(value)


def build_pipelines():
    from mmcv.transforms import Compose
    from mmengine.config import Config

    import mmpretrain
    from mmpretrain.datasets.transforms import ColorJitter

    from mmsimclr.registry import TRANSFORMS

    ours = Config.fromfile(osp.join(REPO, 'configs/_base_/datasets/imagenet_bs256_simclr.py')).train_pipeline
    batched = Config.fromfile(
        osp.join(REPO, 'configs/_base_/datasets/imagenet_bs256_simclr_batchaug.py'))
    theirs = Config.fromfile(
        osp.join(osp.dirname(mmpretrain.__file__), '.mim/configs/_base_/datasets/imagenet_bs32_simclr.py'))
    _non_negative_hue(theirs.train_pipeline)  # the one change (see the module docstring)
    build = lambda cfg: Compose([TRANSFORMS.build(t) for t in cfg])  # noqa: E731
    mmpretrain_pipe = build(theirs.train_pipeline)
    jitters = [t for t in _walk(mmpretrain_pipe) if type(t).__name__ == 'ColorJitter']
    assert jitters and all(type(t) is ColorJitter and t.hue == (0.0, 0.2) for t in jitters), jitters
    preprocessor = Config.fromfile(  # the views on the device: the model part's data preprocessor
        osp.join(REPO, 'configs/_base_/models/simclr_r50_batchaug.py')).model.data_preprocessor
    return build(ours), build(batched.train_pipeline), preprocessor, mmpretrain_pipe


def measure(num_images: int = 64, rounds: int = 5, cifar: str = CIFAR, seed: int = 0, devices=None) -> dict:
    """Interleaved rounds of every pipeline on the same ``num_images`` JPEGs (see the module docstring).

    ``devices``: where the batched path runs (default: the CPU, plus the GPU when there is one). Threads are the
    caller's (``cv2.setNumThreads`` / ``torch.set_num_threads``). Returns ``dict(ips={pipeline: median images/s},
    loader_ips={device: images/s of decode + squash}, device_ips={device: images/s of the device part})``; the
    batched rows are named ``mmsimclr-batched-<device type>``.
    """
    from mmengine.dataset import default_collate

    from mmsimclr.registry import MODELS
    from mmsimclr.utils import register_all_modules
    register_all_modules()
    ours, batched_loader, pre_cfg, theirs = build_pipelines()

    if devices is None:
        devices = [torch.device('cpu')] + ([torch.device('cuda')] if torch.cuda.is_available() else [])
    preprocessors = {dev: MODELS.build(dict(pre_cfg, seed=seed)).to(dev) for dev in devices}

    tmp = tempfile.TemporaryDirectory()
    paths = make_images(tmp.name, num_images, cifar, seed)
    np.random.seed(seed)

    def run_pipeline(pipe):
        for i, path in enumerate(paths):
            out = pipe(dict(img_path=path, sample_idx=i))
        return out

    loader_time = {}

    def run_batched(dev):
        def fn():
            t0 = time.perf_counter()
            batch = default_collate([batched_loader(dict(img_path=p, sample_idx=i)) for i, p in enumerate(paths)])
            t1 = time.perf_counter()
            out = preprocessors[dev](batch, training=True)
            if dev.type == 'cuda':
                torch.cuda.synchronize(dev)
            loader_time.setdefault(dev, []).append(t1 - t0)
            return out
        return fn

    fns = {'mmpretrain': lambda: run_pipeline(theirs), 'mmsimclr-cpu': lambda: run_pipeline(ours)}
    for dev in devices:
        fns[f'mmsimclr-batched-{dev.type}'] = run_batched(dev)

    # sanity: two views of the right size from every path
    out = fns['mmsimclr-cpu']()
    assert len(out['inputs']) == 2 and tuple(out['inputs'][0].shape) == (3, 224, 224)
    out = fns['mmpretrain']()
    assert len(out['inputs']) == 2 and tuple(out['inputs'][0].shape) == (3, 224, 224)
    for dev in devices:
        out = fns[f'mmsimclr-batched-{dev.type}']()
        assert len(out['inputs']) == 2 and tuple(out['inputs'][0].shape) == (num_images, 3, 224, 224)
    loader_time.clear()

    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    tmp.cleanup()

    n = num_images
    ips = {name: n / statistics.median(t) for name, t in times.items()}
    loader_ips, device_ips = {}, {}
    for dev in devices:
        total = statistics.median(times[f'mmsimclr-batched-{dev.type}'])
        load = statistics.median(loader_time[dev])
        loader_ips[dev.type] = n / load
        device_ips[dev.type] = n / max(total - load, 1e-9)
    return dict(ips=ips, loader_ips=loader_ips, device_ips=device_ips)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-images', type=int, default=64)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1, help='OpenCV and torch threads (1: single core)')
    parser.add_argument('--cifar', default=CIFAR, help='CIFAR-10 JPEG archive for natural-ish images')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    result = measure(args.num_images, args.rounds, args.cifar, args.seed)
    ips = result['ips']
    n = args.num_images
    print(f'{n} images of 500x375 (JPEG q90), 2 views of 224x224 each, {args.rounds} interleaved rounds, '
          f'{args.threads} thread(s), median images/s:')
    base = ips['mmpretrain']
    for name, value in ips.items():
        print(f'  {name:28s} {value:8.1f} img/s   x{value / base:5.2f} vs mmpretrain')
    for dev, load in result['loader_ips'].items():
        print(f'  batched on {dev}: loader (decode + squash) {load:8.1f} img/s, '
              f'device views {result["device_ips"][dev]:8.1f} img/s')


if __name__ == '__main__':
    main()
