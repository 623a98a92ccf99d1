"""The dataset's decoded-image cache behind KptLoadImage, in the tiger training pipeline."""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmpose.registry import DATASETS

from turtle_plugin.datasets import yolo_kpt_dataset
from turtle_plugin.datasets.image_cache import (auto_cache_bytes, decoded_bytes,
                                                mem_available_bytes)
from .helpers import TIGER_META, TIGER_SAMPLE

SCALE = (320, 320)
LOAD = dict(type='KptLoadImage', fit_scale=SCALE)
MOSAIC = [
    dict(type='KptMosaic', img_scale=SCALE, pad_val=114., pre_transform=[LOAD]),
    dict(type='KptRandomAffine', border=(-SCALE[0] // 2, -SCALE[1] // 2)),
]
PIPELINE = [
    LOAD, *MOSAIC,
    dict(type='KptMixUp', prob=0.5, pre_transform=[LOAD, *MOSAIC]),
    dict(type='KptHSVRandomAug'),
    dict(type='KptRandomFlip', prob=0.5),
    dict(type='KptFilterAnnotations', min_box_size=2.),
    dict(type='mmpose.GenerateTarget',
         encoder=dict(type='mmpose.YOLOXPoseAnnotationProcessor', input_size=SCALE)),
    dict(type='mmpose.PackPoseInputs'),
]


def build(**kwargs):
    init_default_scope('mmpose')
    return DATASETS.build(dict(
        type='YOLOKptDataset', data_root=str(TIGER_SAMPLE), data_yaml='tiger.yaml',
        split='train', metainfo=dict(from_file=TIGER_META), use_cache=False,
        pipeline=copy.deepcopy(PIPELINE), **kwargs))


def run(dataset, seed=0, count=4):
    np.random.seed(seed)
    return [dataset[i] for i in range(count)]


def test_cached_pipeline_gives_the_uncached_samples():
    plain, cached = build(), build(image_cache_mb=64)
    assert plain.image_cache is None
    for _ in range(2):  # the second pass is served from the cache
        for a, b in zip(run(plain), run(cached)):
            assert torch.equal(a['inputs'], b['inputs'])
            la, lb = a['data_samples'].gt_instance_labels, b['data_samples'].gt_instance_labels
            for key in ('bboxes', 'keypoints', 'keypoints_visible', 'areas'):
                assert torch.equal(getattr(la, key), getattr(lb, key))
    cache = cached.image_cache
    assert 0 < len(cache) <= len(cached) == 16 and cache.hits > 0
    assert cache.nbytes == len(cache) * 180 * 320 * 3  # 1280x720 frames fitted to 320x180


def test_cache_budget_is_respected():
    dataset = build(image_cache_mb=0.4)  # room for two 320x180 images
    run(dataset)
    assert len(dataset.image_cache) == 2
    assert dataset.image_cache.nbytes <= 0.4 * 2**20


def test_negative_budget_is_an_error():
    with pytest.raises(ValueError, match='image_cache_mb'):
        build(image_cache_mb=-1)


# ------------------------------------------------------------------ image_cache_mb='auto'
def test_decoded_bytes_by_hand():
    # 1280x720 fitted to 256x256 is 256x144 (110,592 B), full size 2,764,800 B;
    # 640x640 fitted is 256x256 (196,608 B), full size 1,228,800 B
    sizes = [(1280, 720), (640, 640)]
    assert decoded_bytes(sizes, [(256, 256)]) == 110_592 + 196_608
    assert decoded_bytes(sizes, [(256, 256), None]) == 110_592 + 2_764_800 + 196_608 + 1_228_800
    assert decoded_bytes(sizes, []) == 0


def test_auto_cache_is_the_whole_set_or_nothing():
    tiger = 210 * 110_592  # Tiger-Pose's 210 training frames at 256: 23,224,320 B
    gib = 2**30
    # half of 1 GiB over 14 workers: 38,347,922 B each -> the set fits
    assert auto_cache_bytes(tiger, gib, processes=14) == tiger
    # over 32 workers: 16,777,216 B each -> it does not
    assert auto_cache_bytes(tiger, gib, processes=32) == 0
    # the boundary: exactly 0.5 * mem / workers fits
    assert auto_cache_bytes(1000, 4000, processes=2) == 1000
    assert auto_cache_bytes(1001, 4000, processes=2) == 0
    assert auto_cache_bytes(1000, 2000, processes=0) == 1000  # loading in the main process
    assert auto_cache_bytes(0, gib, processes=1) == 0  # nothing to cache
    assert auto_cache_bytes(tiger, 0, processes=1) == 0  # memory unknown
    with pytest.raises(ValueError, match='fraction'):
        auto_cache_bytes(tiger, gib, 1, fraction=0.)


def test_mem_available_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemTotal:       25165824 kB\nMemFree:  1000 kB\n'
                       'MemAvailable:   21109764 kB\n')
    assert mem_available_bytes(str(meminfo)) == 21_109_764 * 1024
    assert mem_available_bytes(str(tmp_path / 'missing')) == 0


SAMPLE_SET = 16 * 180 * 320 * 3  # the 16 sample frames (1280x720) fitted to 320x180


def test_auto_cache_is_sized_in_the_process_that_loads(monkeypatch):
    monkeypatch.setattr(yolo_kpt_dataset, 'mem_available_bytes', lambda: 4 * SAMPLE_SET)
    dataset = build(image_cache_mb='auto')
    assert dataset.image_cache is None  # not before the first sample: workers size their own
    auto, plain = run(dataset), run(build())
    # one entry per image: the mosaic's and MixUp's loaders fit to the same scale
    assert dataset.image_cache.max_bytes == SAMPLE_SET
    assert all(torch.equal(a['inputs'], b['inputs']) for a, b in zip(auto, plain))


@pytest.mark.parametrize('num_workers, cached', [(2, True), (3, False)])
def test_auto_cache_divides_memory_among_workers(monkeypatch, num_workers, cached):
    # half of 4x the set is 2 sets: room for 2 workers' caches, not for 3
    monkeypatch.setattr(yolo_kpt_dataset, 'mem_available_bytes', lambda: 4 * SAMPLE_SET)
    monkeypatch.setattr(torch.utils.data, 'get_worker_info',
                        lambda: SimpleNamespace(id=1, num_workers=num_workers))
    dataset = build(image_cache_mb='auto')
    dataset[0]
    assert (dataset.image_cache is not None) == cached


def test_auto_cache_counts_the_training_processes_of_the_machine(monkeypatch):
    # 2 ranks (torchrun's LOCAL_WORLD_SIZE) x 2 workers = 4 caches: more than room for 2
    monkeypatch.setattr(yolo_kpt_dataset, 'mem_available_bytes', lambda: 4 * SAMPLE_SET)
    monkeypatch.setattr(torch.utils.data, 'get_worker_info',
                        lambda: SimpleNamespace(id=0, num_workers=2))
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '2')
    dataset = build(image_cache_mb='auto')
    dataset[0]
    assert dataset.image_cache is None


def test_auto_cache_is_off_when_memory_is_short(monkeypatch):
    monkeypatch.setattr(yolo_kpt_dataset, 'mem_available_bytes', lambda: SAMPLE_SET)
    dataset = build(image_cache_mb='auto')
    dataset[0]
    assert dataset.image_cache is None
    with pytest.raises(ValueError, match='image_cache_mb'):
        build(image_cache_mb='big')
