"""Write a tiny image-folder dataset (random coloured shapes, JPEG) for smoke tests and the quick demo.

    python tools/make_tiny_dataset.py OUT_DIR [--classes 4] [--per-class 16] [--size 32]
"""
import argparse
import os
import os.path as osp

import numpy as np
from PIL import Image, ImageDraw


def make_tiny_dataset(out_dir: str, classes: int = 4, per_class: int = 16, size: int = 32, seed: int = 0,
                      splits=('train', 'test')) -> str:
    rng = np.random.default_rng(seed)
    for split in splits:
        for c in range(classes):
            folder = osp.join(out_dir, split, f'class{c}')
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                bg = tuple(int(v) for v in rng.integers(0, 256, 3))
                img = Image.new('RGB', (size, size), bg)
                draw = ImageDraw.Draw(img)
                colour = tuple(int(v) for v in (np.array([60, 120, 180, 240])[c % 4], *rng.integers(0, 256, 2)))
                x0, y0 = rng.integers(0, size // 2, 2)
                w = int(rng.integers(size // 4, size // 2))
                box = [int(x0), int(y0), int(x0) + w, int(y0) + w]
                (draw.ellipse if c % 2 else draw.rectangle)(box, fill=colour)
                img.save(osp.join(folder, f'{i:04d}.jpg'), quality=90)
    return out_dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('out_dir')
    p.add_argument('--classes', type=int, default=4)
    p.add_argument('--per-class', type=int, default=16)
    p.add_argument('--size', type=int, default=32)
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    make_tiny_dataset(a.out_dir, a.classes, a.per_class, a.size)
    print(f'wrote {a.classes} classes x {a.per_class} images to {a.out_dir}/{{train,test}}')


if __name__ == '__main__':
    main()
