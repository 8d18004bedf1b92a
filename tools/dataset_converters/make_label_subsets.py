"""Write class-balanced 1% / 10% label subsets of an ImageNet train annotation list (SimCLR, Table 7).

    # draw balanced, seeded subsets (train_1percent.txt, train_10percent.txt next to the full list)
    python tools/dataset_converters/make_label_subsets.py data/imagenet/meta/train.txt [--fractions 0.01 0.1]
        [--seed 0] [--out-dir data/imagenet/meta]

    # or convert the commonly used published lists (one file name per line, "n01440764_10026.JPEG")
    python tools/dataset_converters/make_label_subsets.py data/imagenet/meta/train.txt \
        --published 1percent.txt 10percent.txt          # -> train_1percent.txt, train_10percent.txt

Each written list is "relative/path.JPEG label" per line (paths and labels of the full list), usable as
``ann_file`` of mmpretrain's ImageNet dataset. Its sha256 is printed, written to ``<list>.sha256`` (check with
``sha256sum -c``) and recorded, with the seed, fraction and per-class counts, in ``label_subsets.json`` in the
output folder. See mmsimclr/datasets/label_subsets.py for the sampling rule.
"""
import argparse
import os.path as osp

from mmsimclr.datasets.label_subsets import (balanced_subset, from_published_list, percent_name,
                                             read_annotation_list, sha256_file, write_with_checksum)

MANIFEST = 'label_subsets.json'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('full_list', help='full train annotation list ("relative/path.JPEG label" per line)')
    p.add_argument('--fractions', type=float, nargs='+', default=[0.01, 0.1],
                   help='fractions of the labels to keep (default: 0.01 0.1)')
    p.add_argument('--seed', type=int, default=0, help='random seed of the draw (default: 0)')
    p.add_argument('--published', nargs='+', metavar='LIST',
                   help='convert these published lists of file names instead of drawing subsets; LIST named '
                   '"1percent.txt" is written as "train_1percent.txt"')
    p.add_argument('--out-dir', help='output folder (default: the folder of full_list)')
    p.add_argument('--prefix', default='train', help='output file name prefix (default: train)')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Write the subsets; returns ``{path: sha256}``."""
    args = parse_args(argv)
    entries = read_annotation_list(args.full_list)
    out_dir = args.out_dir or osp.dirname(osp.abspath(args.full_list))
    manifest = osp.join(out_dir, MANIFEST)
    source = dict(source=osp.basename(args.full_list), source_sha256=sha256_file(args.full_list))
    written = {}
    if args.published:
        for published in args.published:
            if not osp.isfile(published):
                raise FileNotFoundError(f'Published subset list {published} does not exist')
            with open(published, encoding='utf-8') as f:
                subset = from_published_list(f.read().splitlines(), entries, published)
            path = osp.join(out_dir, f'{args.prefix}_{osp.basename(published)}')
            info = dict(source, published=osp.basename(published), published_sha256=sha256_file(published))
            written[path] = write_with_checksum(subset, path, manifest, info)
    else:
        for fraction in args.fractions:
            subset = balanced_subset(entries, fraction, args.seed)
            path = osp.join(out_dir, percent_name(fraction, args.prefix))
            written[path] = write_with_checksum(subset, path, manifest, dict(source, fraction=fraction,
                                                                             seed=args.seed))
    for path, digest in written.items():
        with open(path, encoding='utf-8') as f:
            lines = sum(1 for _ in f)
        print(f'{digest}  {path}  ({lines} images)')
    print(f'sha256 recorded in <list>.sha256 and {manifest}')
    return written


if __name__ == '__main__':
    main()
