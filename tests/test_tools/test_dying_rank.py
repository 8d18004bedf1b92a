"""Two CPU processes of tools/train.py (started the way two nodes would start them); one is killed with SIGKILL
mid-training: the other stops within env_cfg.dist_cfg.timeout, with a message, instead of waiting for torch's
default 30 minutes. The processes are forked from the test (imports done once) and run tools/train.py's main."""
import multiprocessing as mp
import os
import os.path as osp
import signal
import socket
import sys
import time

import pytest

pytestmark = pytest.mark.distributed

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'simclr_r18_1xb16-coslr-2e_tiny.py')
TIMEOUT_S = 20


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _rank(rank, port, argv, output):
    import torch
    torch.set_num_threads(1)
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, 'w', closefd=False)
    sys.stderr = open(2, 'w', closefd=False)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port))
    from tools.train import main
    main(argv)
    os._exit(0)


@pytest.mark.slow
def test_killed_rank_stops_the_other_with_a_message(tiny_data, tmp_path):
    argv = [TINY, '--launcher', 'pytorch', '--work-dir', str(tmp_path / 'work'), '--cfg-options',
            f'train_dataloader.dataset.data_root={tiny_data}', 'train_dataloader.batch_size=8',
            'model.backbone.stem_channels=8', 'model.backbone.base_channels=8', 'model.neck.in_channels=64',
            'model.neck.hid_channels=32', 'model.neck.out_channels=16', 'train_cfg.max_epochs=200',
            f'env_cfg.dist_cfg.timeout={TIMEOUT_S}']
    port, log = _free_port(), tmp_path / 'rank0.txt'
    ctx = mp.get_context('fork')
    procs = [ctx.Process(target=_rank, args=(r, port, argv, str(tmp_path / f'rank{r}.txt'))) for r in range(2)]
    for p in procs:
        p.start()
    try:
        deadline = time.time() + 120
        while not log.exists() or 'Epoch(train)' not in log.read_text():
            assert time.time() < deadline and procs[0].is_alive(), log.read_text()[-3000:]
            time.sleep(0.2)
        os.kill(procs[1].pid, signal.SIGKILL)
        t0 = time.time()
        procs[0].join(TIMEOUT_S + 15)
        waited = time.time() - t0
    finally:
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGKILL)
            p.join()
    out = log.read_text()
    assert procs[0].exitcode == 75 and waited < TIMEOUT_S + 10, out[-3000:]
    assert 'rank 0 of 2: lost contact with another process of this job' in out
    assert f'env_cfg.dist_cfg.timeout={TIMEOUT_S} s' in out and '--resume auto' in out
