"""Weighted kNN top-1 of any checkpoint's backbone features (ours or OpenMMLab's).

    python tools/analysis/knn_eval.py CONFIG CHECKPOINT [--data-root PATH] [--num-train N] [--num-test N]
        [--k 200] [--temperature 0.1] [--feature feat|proj] [--out result.json] [--cfg-options k=v ...]

CONFIG is a SimCLR pretraining config (the kNN sets are its training data without augmentation, test split from
the same source) or a linear/supervised config (its test_dataloader and the matching train split). CHECKPOINT is
a .pth file, or ``random`` for the same network at random initialisation. Memory bank: the train split (or a
random ``--num-train`` subset); queries: the test split. Vote: cosine similarity, k neighbours, weights
exp(sim / T) (see mmsimclr/evaluation/knn.py).
"""
import argparse
import json
import time

from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger

from mmsimclr.apis import get_model
from mmsimclr.evaluation import (build_eval_loader, build_subset, eval_dataset_cfgs, extract_dataset_features,
                                 knn_top1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint', help='checkpoint .pth, or "random" for the randomly initialised network')
    p.add_argument('--data-root', help='dataset root replacing the config\'s (an image folder with train/ test/)')
    p.add_argument('--num-train', type=int, help='random memory-bank subset size (default: the whole train split)')
    p.add_argument('--num-test', type=int, help='random query subset size (default: the whole test split)')
    p.add_argument('--k', type=int, default=200)
    p.add_argument('--temperature', type=float, default=0.1)
    p.add_argument('--feature', default='feat', help='"feat" (backbone, default) or "proj" (SimCLR projection)')
    p.add_argument('--batch-size', type=int, default=256)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', help='write the result as json here')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.time()
    logger = MMLogger.get_instance('mmsimclr_knn_eval', log_level='INFO')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    # only the backbone must be in the checkpoint (a SimCLR one may feed a linear config); 'random': no weights
    model = get_model(cfg, pretrained=False if args.checkpoint == 'random' else args.checkpoint, strict=False)
    sets = eval_dataset_cfgs(cfg, args.data_root)
    train_set = build_subset(sets['train'], args.num_train, args.seed)
    test_set = build_subset(sets['test'], args.num_test, args.seed + 1)
    logger.info(f'kNN evaluation of {args.checkpoint}: memory bank {len(train_set)} images, '
                f'queries {len(test_set)} images, k={args.k}, T={args.temperature}, feature={args.feature}')
    progress = not args.no_progress
    train_feats, train_labels = extract_dataset_features(
        model, build_eval_loader(train_set, args.batch_size, args.workers), args.feature, progress, logger,
        'memory bank')
    test_feats, test_labels = extract_dataset_features(
        model, build_eval_loader(test_set, args.batch_size, args.workers), args.feature, progress, logger,
        'queries')
    classes = train_set.metainfo.get('classes')
    top1 = knn_top1(train_feats, train_labels, test_feats, test_labels, len(classes) if classes else None,
                    args.k, args.temperature)
    result = dict(knn_top1=top1, k=args.k, temperature=args.temperature, feature=args.feature,
                  num_train=len(train_set), num_test=len(test_set), checkpoint=args.checkpoint,
                  config=args.config, seconds=round(time.time() - start, 1))
    logger.info(f'kNN top-1: {top1:.2f} %  ({result["seconds"]} s)')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
