"""Classify an image (or embed it, for SimCLR pretraining models) with a model-zoo model or a config.

    python demo/image_demo.py IMAGE MODEL [--device cpu|cuda] [--topk K] [--weights PATH_OR_URL]

MODEL is a model-zoo name (``python -c "import mmsimclr; print(mmsimclr.list_models())"``) or a config file;
its published weights are downloaded once into the cache ($MMSIMCLR_CACHE, default torch hub's checkpoint folder),
from $MMSIMCLR_MIRROR when set.
"""
import argparse
import sys

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('model', help='model-zoo name or config file')
    parser.add_argument('--device', default=None, help='cpu, cuda or cuda:N (default: GPU if available)')
    parser.add_argument('--topk', type=int, default=5, help='how many classes to print (default 5)')
    parser.add_argument('--weights', default=None,
                        help="checkpoint path or URL (default: the model-zoo entry's published weights)")
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    return args


def format_result(result: dict, topk: int) -> str:
    """Text for one :func:`mmsimclr.inference_model` result: top classes, or embedding shapes and norms."""
    if 'pred_scores' in result:
        scores = result['pred_scores']
        classes = result.get('classes')
        lines = [f'{"rank":>4}  {"label":>5}  {"score":>7}  class']
        for rank, label in enumerate(np.argsort(-scores)[:topk], 1):
            name = classes[label] if classes else ''
            lines.append(f'{rank:>4}  {label:>5}  {scores[label]:7.4f}  {name}')
        return '\n'.join(lines)
    return '\n'.join(f'{key}: shape {tuple(value.shape)}, L2 norm {float(np.linalg.norm(value)):.4f}'
                     for key, value in result.items())


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmsimclr
    try:
        model = mmsimclr.get_model(args.model, pretrained=args.weights or True, device=args.device)
        result = mmsimclr.inference_model(model, args.image)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    if 'pred_scores' in result:
        result['classes'] = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    print(format_result(result, args.topk))
    return 0


if __name__ == '__main__':
    sys.exit(main())
