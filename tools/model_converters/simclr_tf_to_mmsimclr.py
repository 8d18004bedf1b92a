"""Convert a SimCLR paper checkpoint (google-research/simclr, TensorFlow) to an mmsimclr checkpoint.

    python tools/model_converters/simclr_tf_to_mmsimclr.py ResNet50_1x.zip
    python tools/model_converters/simclr_tf_to_mmsimclr.py ResNet50_1x/model.ckpt-225206 r50_1x.pth
    python tools/model_converters/simclr_tf_to_mmsimclr.py ResNet50_1x/hub r50_1x.pth      # TF-Hub module folder

TensorFlow is not needed. The output (``{'state_dict', 'meta'}``: mmpretrain ResNet keys under ``backbone.``, the
linear classifier as ``head.fc.*``) loads into ``configs/simclr-tf/resnet50-<w>x_simclr-tf-pre_8xb512-linear-coslr-90e_in1k.py``:
``mmsimclr.get_model(config, pretrained='r50_1x.pth')``. See :mod:`mmsimclr.apis.simclr_tf` for the mapping.
"""
import argparse
import os.path as osp
import sys

from mmsimclr.apis.download import sha256_of
from mmsimclr.apis.simclr_tf import convert_file, default_output_name
from mmsimclr.utils.tf_checkpoint import TFCheckpointError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='TF checkpoint prefix (model.ckpt-N), its .index, a folder holding one '
                        'checkpoint, a TF-Hub module folder, or the published .zip')
    parser.add_argument('dst', nargs='?', help='output .pth (default: <folder or archive name>_mmsimclr.pth)')
    parser.add_argument('--force', action='store_true', help='overwrite an existing output file')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    dst = args.dst or default_output_name(args.src)
    if osp.exists(dst) and not args.force:
        print(f'error: {dst} exists; pass --force to overwrite it or choose another output name', file=sys.stderr)
        return 2
    try:
        arch = convert_file(args.src, dst)
    except (FileNotFoundError, TFCheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    width = arch['width_multiplier']
    print(f'ResNet-{arch["depth"]} ({width:g}x, stem/base channels {arch["stem_channels"]}, '
          f'{arch["feat_dim"]}-d features, {arch["num_classes"] or "no"} classes) -> {dst}\nsha256 {sha256_of(dst)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
