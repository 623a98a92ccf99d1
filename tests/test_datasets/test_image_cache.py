"""The dataset's decoded-image cache behind KptLoadImage, in the tiger training pipeline."""
import copy

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmpose.registry import DATASETS

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
