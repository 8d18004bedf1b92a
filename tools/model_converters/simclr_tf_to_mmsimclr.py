"""Convert a SimCLR or SimCLRv2 checkpoint (google-research/simclr, TensorFlow) to an mmsimclr checkpoint.

    python tools/model_converters/simclr_tf_to_mmsimclr.py ResNet50_1x.zip
    python tools/model_converters/simclr_tf_to_mmsimclr.py ResNet50_1x/model.ckpt-225206 r50_1x.pth
    python tools/model_converters/simclr_tf_to_mmsimclr.py ResNet50_1x/hub r50_1x.pth      # TF-Hub module folder
    python tools/model_converters/simclr_tf_to_mmsimclr.py r152_3x_sk1/model.ckpt-250228    # SimCLRv2

TensorFlow is not needed. SimCLR v1 and v2 are told apart from the checkpoint (v2: selective kernels or the
``head_contrastive`` projection head); depth, width and SK are read from it. The output (``{'state_dict', 'meta'}``)
holds ``backbone.*``, ``neck.*`` (v2's projection head) and the linear classifier ``head.fc.*``. v1 checkpoints load
into ``configs/simclr-tf/resnet50-<w>x_simclr-tf-pre_8xb512-linear-coslr-90e_in1k.py``, v2 ones into
``configs/simclrv2/<model>_simclrv2-{pre,finetune-<N>pct}_8xb512-linear-coslr-90e_in1k.py`` (the fine-tuned 1% /
10% configs put the classifier on the head's first layer): ``mmsimclr.get_model(config, pretrained='out.pth')``.
See :mod:`mmsimclr.apis.simclr_tf` and :mod:`mmsimclr.apis.simclrv2_tf` for the mapping and which copy of a v2
checkpoint is taken (``base_model/``; ``--ema`` for the momentum encoder's ``ema_model/``).
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
    parser.add_argument('--ema', action='store_true', help='SimCLRv2: convert the ema_model/ copy (the momentum '
                        'encoder) instead of base_model/, which the published accuracies belong to')
    parser.add_argument('--force', action='store_true', help='overwrite an existing output file')
    return parser.parse_args(argv)


def describe(arch: dict) -> str:
    """One line: the architecture and heads a conversion found."""
    width = arch['width_multiplier']
    text = f'ResNet-{arch["depth"]} ({width:g}x'
    if arch.get('layout') == 'SimCLRv2':
        text = f'SimCLRv2 {text}, {"SK" if arch["sk_ratio"] else "no SK"}'
    text += f', stem/base channels {arch["stem_channels"]}, {arch["feat_dim"]}-d features)'
    if arch.get('proj_layers'):
        text += f' + {arch["proj_layers"]}-layer projection head ({arch["proj_dim"]}-d)'
    text += f' + {arch["num_classes"]}-way linear head' if arch['num_classes'] else ', no linear head'
    if arch.get('copy', 'base_model') != 'base_model':
        text += f' [{arch["copy"]}]'
    return text


def main(argv=None) -> int:
    args = parse_args(argv)
    dst = args.dst or default_output_name(args.src)
    if osp.exists(dst) and not args.force:
        print(f'error: {dst} exists; pass --force to overwrite it or choose another output name', file=sys.stderr)
        return 2
    try:
        arch = convert_file(args.src, dst, ema=args.ema)
    except (FileNotFoundError, TFCheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'{describe(arch)} -> {dst}\nsha256 {sha256_of(dst)}')
    if arch.get('ignored'):
        print(f'not converted: {", ".join(arch["ignored"])}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
