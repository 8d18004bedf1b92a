"""UnlabeledImageFolder and the one listing rule (list_images): any folder tree, hidden and non-image files left out,
the held-out sample, the file list made once (by rank 0) and read back."""
import json
import os
import os.path as osp

import pytest
import torch.multiprocessing as mp

from mmsimclr.datasets import UnlabeledImageFolder
from mmsimclr.datasets import unlabeled_image_folder as module
from mmsimclr.datasets.image_folder import list_images


def test_list_images_takes_every_image_at_any_depth_and_nothing_else(mixed_image_folder):
    root, info = mixed_image_folder
    listed = list_images(root)
    assert listed == sorted(info['images'] + info['broken'])  # the broken file is an image file: read fails later
    assert not any(p.startswith('.') or '/.' in p for p in listed)
    assert not any(p.endswith(('.txt', '.bak')) for p in listed)
    from mmsimclr.apis.images import expand_images  # inference and feature extraction list folders the same way
    assert expand_images(root) == [osp.join(root, p) for p in listed]


def test_every_file_decodes_to_colour_and_the_broken_one_is_named(mixed_image_folder, caplog):
    root, info = mixed_image_folder
    ds = UnlabeledImageFolder(data_root=root, split='all', pipeline=[dict(type='LoadImageColor')],
                              serialize_data=False)
    by_path = {d['img_path']: d for d in ds.data_list}
    assert sorted(osp.relpath(p, root) for p in by_path) == sorted(info['images'] + info['broken'])
    for i, d in enumerate(ds.data_list):
        if d['img_path'].endswith('broken.jpg'):
            assert ds.pipeline(dict(d)) is None  # skipped (mmengine's dataset then draws another image)
            continue
        out = ds.pipeline(dict(d))
        assert out['img'].dtype.name == 'uint8' and out['img'].ndim == 3 and out['img'].shape[2] == 3
        assert 'gt_label' not in ds.get_data_info(i)


def test_holdout_is_fixed_disjoint_and_capped(mixed_image_folder):
    root, info = mixed_image_folder
    total = len(info['images']) + 1

    def paths(**kw):
        return [d['img_path'] for d in UnlabeledImageFolder(data_root=root, serialize_data=False, **kw).data_list]

    held = paths(split='holdout', holdout=2000)  # capped at 10% of the 25 image files
    train = paths(split='train', holdout=2000)
    assert len(held) == total // 10 == 2
    assert sorted(held + train) == sorted(paths(split='all')) and not set(held) & set(train)
    assert held == paths(split='holdout', holdout=2000)  # the same sample every time
    assert paths(split='holdout', holdout=2000, seed=1) != held
    assert len(paths(split='holdout', holdout=8, holdout_max_fraction=0.5)) == 8
    assert paths(split='train') == paths(split='all')  # holdout=0: nothing left out
    # a folder too small for one held-out image: the reason, not mmengine's "need at least one array to concatenate"
    with pytest.raises(ValueError, match=r'held-out sample .* is empty: 25 images .*at least 100 for one'):
        UnlabeledImageFolder(data_root=root, split='holdout', holdout=5, holdout_max_fraction=0.01)


def test_file_list_is_written_once_then_read_back(mixed_image_folder, tmp_path, monkeypatch):
    root, _ = mixed_image_folder
    cache = str(tmp_path / 'work' / 'file_list.txt')
    first = UnlabeledImageFolder(data_root=root, file_list=cache, serialize_data=False)
    header = json.loads(open(cache).readline())
    assert header['root'] == osp.abspath(root) and header['count'] == len(first)

    def no_listing(*args, **kwargs):
        raise AssertionError('the folder was listed again')

    monkeypatch.setattr(module, 'list_images', no_listing)
    again = UnlabeledImageFolder(data_root=root, file_list=cache, serialize_data=False)
    assert again.data_list == first.data_list
    # a list made for another folder, or a damaged one, is not used
    monkeypatch.undo()
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'one.png').write_bytes(open(first.data_list[0]['img_path'], 'rb').read())
    assert len(UnlabeledImageFolder(data_root=str(other), file_list=cache, serialize_data=False)) == 1
    with open(cache, 'a') as f:
        f.write('extra/line.jpg\n')  # count no longer matches the header
    assert module.read_file_list(cache, str(other), UnlabeledImageFolder(data_root=str(other)).extensions) is None


def test_missing_or_empty_folder_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'does not exist.*train_dataloader\.dataset\.data_root=DIR'):
        UnlabeledImageFolder(data_root=str(tmp_path / 'nope'))
    (tmp_path / 'empty' / '.git').mkdir(parents=True)
    (tmp_path / 'empty' / 'readme.md').write_text('x')
    with pytest.raises(FileNotFoundError, match=r'no images under .*empty.*hidden files ignored'):
        UnlabeledImageFolder(data_root=str(tmp_path / 'empty'))
    with pytest.raises(ValueError, match='split must be one of'):
        UnlabeledImageFolder(data_root=str(tmp_path), split='test')


def _rank_lists(rank, world, port, root, cache, out_dir):
    from tests.test_models.test_utils import dist_workers
    dist_workers.init(rank, world, port)
    if rank == 1:  # only rank 0 may list the folder
        def no_listing(*args, **kwargs):
            raise AssertionError('rank 1 listed the folder')
        module.list_images = no_listing
    ds = UnlabeledImageFolder(data_root=root, file_list=cache, serialize_data=False)
    with open(osp.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump([d['img_path'] for d in ds.data_list], f)
    import torch.distributed as dist
    dist.destroy_process_group()


@pytest.mark.distributed
def test_rank_0_lists_and_the_other_ranks_read_its_list(mixed_image_folder, tmp_path):
    from tests.test_models.test_utils.test_distributed import free_port
    root, info = mixed_image_folder
    cache = str(tmp_path / 'file_list.txt')
    mp.start_processes(_rank_lists, args=(2, free_port(), root, cache, str(tmp_path)), nprocs=2,
                       start_method='fork')
    lists = [json.load(open(tmp_path / f'rank{r}.json')) for r in range(2)]
    assert lists[0] == lists[1] and len(lists[0]) == len(info['images']) + 1
