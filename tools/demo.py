"""The quick demo: SimCLR on a tiny generated image folder for 2 epochs (replaced by the CIFAR-10 demo later).

    python tools/demo.py [--data PATH]
"""
import argparse
import os.path as osp
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--data', help='an image folder with train/<class>/*; default: a generated tiny one')
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'))
    args = parser.parse_args()
    from tools.make_tiny_dataset import make_tiny_dataset
    from tools.train import main as train
    data = args.data or make_tiny_dataset(tempfile.mkdtemp(prefix='mmsimclr-tiny-'))
    runner = train([osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py'), '--work-dir', args.work_dir,
                    '--cfg-options', f'train_dataloader.dataset.data_root={data}'])
    print(f'demo finished: checkpoints and logs in {runner.work_dir}')


if __name__ == '__main__':
    main()
