"""The example tiger pipelines, built from config dicts, over the bundled data/tiger_sample."""
import copy

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmpose.registry import DATASETS

from .helpers import TIGER_META, TIGER_SAMPLE

IMG_SCALE = (320, 320)  # (w, h); the recipe uses (640, 640), smaller keeps the test fast
MOSAIC = [
    dict(type='RandomChoice', prob=[0.8, 0.2], transforms=[
        [dict(type='KptMosaic', img_scale=IMG_SCALE, pad_val=114.,
              pre_transform=[dict(type='LoadImage')])],
        [dict(type='KptMosaic9', img_scale=IMG_SCALE, pad_val=114.,
              pre_transform=[dict(type='LoadImage')])]]),
    dict(type='KptRandomAffine', degrees=0., translate=0.2, scale=0.9, shear=0.,
         perspective=0., border=(-IMG_SCALE[0] // 2, -IMG_SCALE[1] // 2)),
]
TRAIN_PIPELINE = [
    dict(type='LoadImage'),
    *MOSAIC,
    dict(type='KptMixUp', prob=0.15, pre_transform=[dict(type='LoadImage'), *MOSAIC]),
    dict(type='KptHSVRandomAug', hue=0.015, saturation=0.7, value=0.4),
    dict(type='KptRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='KptFilterAnnotations', min_box_size=2.),
    dict(type='mmpose.GenerateTarget',
         encoder=dict(type='mmpose.YOLOXPoseAnnotationProcessor', input_size=IMG_SCALE)),
    dict(type='mmpose.PackPoseInputs'),
]
# close-mosaic stage (CloseMosaicHook's new_train_pipeline): YOLOv7's non-mosaic training path
TRAIN_PIPELINE_STAGE2 = [
    dict(type='LoadImage'),
    dict(type='KptLetterResize', scale=IMG_SCALE, pad_val=114., allow_scale_up=True),
    dict(type='KptRandomAffine', degrees=0., translate=0.2, scale=0.9, shear=0., perspective=0.),
    dict(type='KptHSVRandomAug', hue=0.015, saturation=0.7, value=0.4),
    dict(type='KptRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='KptFilterAnnotations', min_box_size=2.),
    dict(type='mmpose.GenerateTarget',
         encoder=dict(type='mmpose.YOLOXPoseAnnotationProcessor', input_size=IMG_SCALE)),
    dict(type='mmpose.PackPoseInputs'),
]
VAL_PIPELINE = [
    dict(type='LoadImage'),
    dict(type='KptLetterResize', scale=IMG_SCALE, pad_val=114., allow_scale_up=False),
    dict(type='mmpose.PackPoseInputs',
         meta_keys=('id', 'img_id', 'img_path', 'ori_shape', 'img_shape', 'input_size',
                    'input_center', 'input_scale', 'raw_ann_info')),
]


def dataset_cfg(split, pipeline, **kwargs):
    return dict(type='YOLOKptDataset', data_root=str(TIGER_SAMPLE), data_yaml='tiger.yaml',
                split=split, metainfo=dict(from_file=TIGER_META), use_cache=False,
                pipeline=copy.deepcopy(pipeline), **kwargs)


def test_bundled_sample_layout():
    assert len(list((TIGER_SAMPLE / 'train' / 'images').glob('*.jpg'))) == 16
    assert len(list((TIGER_SAMPLE / 'val' / 'labels').glob('*.txt'))) == 8
    assert (TIGER_SAMPLE / 'LICENSE').is_file() and (TIGER_SAMPLE / 'SOURCE.md').is_file()
    size = sum(p.stat().st_size for p in TIGER_SAMPLE.rglob('*') if p.is_file())
    assert size < 3 * 2**20


@pytest.mark.parametrize('pipeline', [TRAIN_PIPELINE, TRAIN_PIPELINE_STAGE2])
def test_train_pipeline_packs_yoloxpose_targets(pipeline):
    init_default_scope('mmpose')
    np.random.seed(0)
    dataset = DATASETS.build(dataset_cfg('train', pipeline))
    batch = pseudo_collate([dataset[i] for i in range(4)])
    for inputs, sample in zip(batch['inputs'], batch['data_samples']):
        assert inputs.shape == (3, 320, 320) and inputs.dtype == torch.uint8
        labels = sample.gt_instance_labels
        n = len(labels.bboxes)
        assert n >= 1  # with these seeds, at least one tiger survives the augmentations
        assert labels.keypoints.shape == (n, 12, 2)
        assert labels.keypoints_visible.shape == (n, 12)
        assert labels.labels.tolist() == [0] * n and labels.areas.shape == (n, )
        boxes = labels.bboxes
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 320).all()
        assert ((boxes[:, 2:] - boxes[:, :2]) > 2).all()
        # every visible keypoint lies on the 320x320 input
        kpts = labels.keypoints[labels.keypoints_visible > 0]
        assert ((kpts >= 0) & (kpts <= 320)).all()
        assert set(labels.keypoints_visible.unique().tolist()) <= {0., 1.}


def test_val_pipeline_maps_back_to_the_original_image():
    init_default_scope('mmpose')
    dataset = DATASETS.build(dataset_cfg('val', VAL_PIPELINE, test_mode=True))
    assert len(dataset) == 8
    packed = dataset[0]
    sample = packed['data_samples']
    assert packed['inputs'].shape == (3, 320, 320)
    assert sample.ori_shape == (720, 1280) and sample.input_size == (320, 320)
    info = dataset.get_data_info(0)
    # the letterboxed keypoints, mapped back with MMPose's formula, are the labelled ones
    kpts = sample.gt_instances.keypoints
    back = (kpts / np.array(sample.input_size) * sample.input_scale + sample.input_center
            - 0.5 * sample.input_scale)
    np.testing.assert_allclose(back, info['keypoints'], atol=1e-2)
    assert sample.raw_ann_info == info['raw_ann_info']


@pytest.mark.parametrize('split', ['train', 'val'])
def test_detection_pipeline_in_the_mmdet_scope(split):
    init_default_scope('mmdet')
    from mmdet.registry import DATASETS as MMDET_DATASETS
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='KptLetterResize', scale=IMG_SCALE),
                dict(type='KptToDetAnnotations'),
                dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                                      'img_shape', 'scale_factor', 'pad_param'))]
    dataset = MMDET_DATASETS.build(dataset_cfg(split, pipeline))
    sample = dataset[0]['data_samples']
    info = dataset.get_data_info(0)
    boxes = sample.gt_instances.bboxes.tensor.numpy()
    top, _, left, _ = sample.pad_param
    sx, sy = sample.scale_factor
    np.testing.assert_allclose((boxes - [left, top, left, top]) / [sx, sy, sx, sy], info['bbox'],
                               atol=1e-2)
    assert sample.gt_instances.labels.tolist() == [0]
