"""Listing a folder of 100k images: mmsimclr's ``UnlabeledImageFolder`` (listed once, then its cached file list)
next to mmpretrain's ``CustomDataset`` (which lists the folder in every process that builds it).

Makes ``--files`` empty image files (names only matter: nothing is decoded) in ``--folders`` class-like
sub-folders of a temporary folder, then times, alternating, the median of ``--repeats`` builds of:

- ``list_images`` (the walk ``UnlabeledImageFolder`` does once per run, on rank 0) and ``read_file_list`` (what
  the other ranks and every restart do instead);
- the whole ``UnlabeledImageFolder`` build from its cached ``file_list.txt`` and without one (the list, the
  held-out split, 100k sample dicts, mmengine's serialisation of them);
- mmpretrain's ``CustomDataset(with_label=False)`` on the same folder (its ``data_prefix`` sub-folders).

    python tools/benchmark/folder_scan.py [--files 100000] [--folders 100] [--repeats 3]
"""
import argparse
import os
import os.path as osp
import shutil
import tempfile
import time


def make_folder(root: str, files: int, folders: int) -> None:
    for f in range(folders):
        os.makedirs(osp.join(root, f'class_{f:04d}'), exist_ok=True)
    for i in range(files):
        open(osp.join(root, f'class_{i % folders:04d}', f'img_{i:07d}.JPEG'), 'wb').close()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--files', type=int, default=100_000)
    p.add_argument('--folders', type=int, default=100)
    p.add_argument('--repeats', type=int, default=3)
    args = p.parse_args(argv)

    from mmpretrain.datasets import CustomDataset

    from mmsimclr.datasets import UnlabeledImageFolder
    from mmsimclr.datasets.image_folder import IMAGE_EXTENSIONS, list_images
    from mmsimclr.datasets.unlabeled_image_folder import read_file_list
    root = tempfile.mkdtemp(prefix='folder_scan_')
    try:
        made = timed(lambda: make_folder(root, args.files, args.folders))
        cache = osp.join(root + '_work', 'file_list.txt')
        UnlabeledImageFolder(data_root=root, file_list=cache)  # writes the list
        runs = {'list_images (rank 0, once)': [], 'read_file_list (other ranks, restarts)': [],
                'UnlabeledImageFolder from file_list.txt': [], 'UnlabeledImageFolder, no file list': [],
                'mmpretrain CustomDataset': []}
        exts = tuple(sorted(IMAGE_EXTENSIONS))
        for _ in range(args.repeats):
            runs['list_images (rank 0, once)'].append(timed(lambda: list_images(root)))
            runs['read_file_list (other ranks, restarts)'].append(timed(lambda: read_file_list(cache, root, exts)))
            runs['UnlabeledImageFolder from file_list.txt'].append(
                timed(lambda: UnlabeledImageFolder(data_root=root, file_list=cache)))
            runs['UnlabeledImageFolder, no file list'].append(timed(lambda: UnlabeledImageFolder(data_root=root)))
            runs['mmpretrain CustomDataset'].append(
                timed(lambda: CustomDataset(data_root=root, with_label=False, extensions=('.jpeg', ))))
        medians = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
        ref = medians['mmpretrain CustomDataset']
        print(f'{args.files} files in {args.folders} folders (made in {made:.1f} s); median of {args.repeats}:')
        print(f'{"":42s} {"seconds":>8s} {"vs mmpretrain":>14s}')
        for name, sec in medians.items():
            print(f'{name:42s} {sec:8.3f} {sec / ref:13.2f}x')
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(root + '_work', ignore_errors=True)


if __name__ == '__main__':
    main()
