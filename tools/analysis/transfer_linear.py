"""Linear transfer evaluation (SimCLR, Table 8): frozen backbone features + L2-regularised logistic regression.

    python tools/analysis/transfer_linear.py MODEL DATA_ROOT [--checkpoint PATH] [--train-split train]
        [--test-split test] [--size 224] [--grid-min 1e-6 --grid-max 1e5 --grid-num 45 | --l2 VALUE]
        [--val-fraction 0.2] [--seed 0] [--feature feat] [--batch-size 64] [--device cpu] [--out result.json]

MODEL: a model-zoo name (published weights, or --checkpoint), a config file (with --checkpoint, or the zoo weights
of that config), or a checkpoint written by tools/train.py (its stored config is used). DATA_ROOT holds
``<train-split>/<class>/<image>`` and ``<test-split>/<class>/<image>``.

Images: short side resized to --size, centre crop, no augmentation. Features: the pooled backbone output ``h``
(progress bar while extracting). Classifier: multinomial logistic regression, L-BFGS, penalty (lambda/2)||W||^2
with lambda chosen from the log-spaced grid on a stratified --val-fraction of the training split, then refit on
the whole training split (see mmsimclr/evaluation/logistic_regression.py). Prints test top-1 (and top-5).
"""
import argparse
import json
import os.path as osp

import numpy as np

from mmsimclr.apis import get_model, linear_transfer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('model', help='model-zoo name, config file, or checkpoint (.pth) written by tools/train.py')
    p.add_argument('data_root', help='image folder with <train-split>/<class>/* and <test-split>/<class>/*')
    p.add_argument('--checkpoint', help='weights for a config or zoo name (default: the zoo\'s published ones)')
    p.add_argument('--train-split', default='train')
    p.add_argument('--test-split', default='test')
    p.add_argument('--size', type=int, default=224, help='resize the short side to this and centre-crop it')
    p.add_argument('--grid-min', type=float, default=1e-6)
    p.add_argument('--grid-max', type=float, default=1e5)
    p.add_argument('--grid-num', type=int, default=45, help='log-spaced lambda values (paper: 45 in [1e-6, 1e5])')
    p.add_argument('--l2', type=float, help='use this lambda instead of choosing one from the grid')
    p.add_argument('--val-fraction', type=float, default=0.2, help='held-out part of train for choosing lambda')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--feature', default='feat', help='"feat" (pooled backbone, default) or "proj" (SimCLR z)')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--device', help='cpu, cuda, cuda:N (default: the GPU if there is one)')
    p.add_argument('--out', help='also write the result as json here')
    p.add_argument('--no-progress', action='store_true')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    for split in (args.train_split, args.test_split):
        if not osp.isdir(osp.join(args.data_root, split)):
            raise FileNotFoundError(f'{osp.join(args.data_root, split)} does not exist; DATA_ROOT must hold '
                                    f'{args.train_split}/<class>/* and {args.test_split}/<class>/* '
                                    '(or pass --train-split / --test-split)')
    if args.l2 is not None:
        grid = [args.l2]
    else:
        if args.grid_num < 1 or not 0 < args.grid_min <= args.grid_max:
            raise ValueError('--grid-min and --grid-max must be positive with min <= max, and --grid-num >= 1')
        grid = np.logspace(np.log10(args.grid_min), np.log10(args.grid_max), args.grid_num).tolist()
    # a checkpoint as MODEL brings its config and weights; a config or zoo name takes --checkpoint, else its
    # published weights
    net = get_model(args.model, pretrained=args.checkpoint or True, device=args.device,
                    progress=not args.no_progress)
    result = linear_transfer(net, osp.join(args.data_root, args.train_split), osp.join(args.data_root, args.test_split),
                             args.size, grid, args.val_fraction, args.seed, args.feature, args.batch_size,
                             progress=not args.no_progress)
    result = dict(model=args.model, checkpoint=args.checkpoint, data_root=args.data_root, **result)
    top5 = f', top-5 {result["top5"]:.2f}%' if result['top5'] is not None else ''
    print(f'Linear transfer of {args.model} on {args.data_root}: {result["num_train"]} train / '
          f'{result["num_test"]} test images, {result["num_classes"]} classes, {result["feature_dim"]}-d features; '
          f'lambda = {result["l2"]:.3g} (of {len(grid)}); test top-1 {result["top1"]:.2f}%{top5}')
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
