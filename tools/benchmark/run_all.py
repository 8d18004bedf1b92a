"""All side-by-side benchmarks, mmsimclr vs mmpretrain, in one run: NT-Xent (time and peak memory at several
batch sizes), LARS step, full training step (default and with the given speed options), global BN vs BatchNorm (CPU).

    python tools/benchmark/run_all.py [--device auto] [--threads N] [--quick]
                                      [--train-options channels-last amp compile]

``--device auto`` uses the GPU when there is one (timings synchronise the device; peak memory from
``torch.cuda.max_memory_allocated``), else the CPU. ``--quick`` uses fewer repetitions and skips batch 4096.
"""
import argparse

import torch

import global_bn  # this folder's sibling scripts: a script's own folder is first on sys.path
import lars
import loss
import train_step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='auto')
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--threads', type=int, help='torch threads (1 gives steadier ratios on a shared machine)')
    parser.add_argument('--train-options', nargs='*', default=['channels-last'],
                        choices=['channels-last', 'amp', 'compile'])
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    common = ['--device', args.device] + (['--threads', str(args.threads)] if args.threads else [])
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'cuda: {torch.cuda.get_device_name() if torch.cuda.is_available() else "none"}\n')
    batches = ['256', '1024'] if args.quick else ['256', '1024', '4096']
    loss.main([*common, '--batch', *batches, '--repeats', '3' if args.quick else '5'])
    print()
    lars.main([*common, '--repeats', '7' if args.quick else '15'])
    print()
    options = [f'--{o}' for o in args.train_options]
    train_step.main([*common, '--case', 'r18-32', '--repeats', '7' if args.quick else '15',
                     *options])
    train_step.main([*common, '--case', 'r50-224', '--repeats', '3' if args.quick else '5',
                     '--warmup', '1', *options])
    print()
    global_bn.main(['--repeats', '2' if args.quick else '3', *common[2:]])


if __name__ == '__main__':
    main()
