"""Reading back what mmengine's LocalVisBackend logged (the loss curve and the kNN monitor's rows)."""
import pytest
from mmengine.visualization import LocalVisBackend

from mmsimclr.utils.vis_scalars import read_scalar_rows, read_scalars


def test_reads_what_local_vis_backend_wrote(tmp_path):
    backend = LocalVisBackend(save_dir=str(tmp_path / 'vis_data'))  # where the Runner puts it under its log_dir
    backend.add_scalars({'knn/top1': 31.25, 'knn/epoch': 0, 'knn/time_s': 0.5}, step=0)
    for step, loss in ((10, 5.5), (20, 5.25)):
        backend.add_scalars({'loss': loss, 'lr': 0.1, 'time': 0.2}, step=step)
    backend.add_scalars({'knn/top1': 40.625, 'knn/epoch': 2, 'knn/time_s': 0.75}, step=20)
    loss, knn = read_scalars(str(tmp_path))
    assert loss == [(10, 5.5), (20, 5.25)]
    assert knn == [(0, 31.25), (2, 40.625)]
    assert sum(r.get('knn/time_s', 0) for r in read_scalar_rows(str(tmp_path))) == 1.25


def test_missing_log_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=f'{tmp_path}/vis_data/scalars.json does not exist: pass the log'):
        read_scalars(str(tmp_path))
