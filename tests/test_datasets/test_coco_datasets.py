"""COCO keypoint json through MMPose's CocoDataset (custom metainfo, bottom-up) and MMDetection's
CocoDataset (detection only), on the mmpose_testdata samples (K from 9 to 35)."""
import json

import numpy as np
import pytest
from mmdet.registry import DATASETS as MMDET_DATASETS
from mmengine.registry import init_default_scope
from mmpose.registry import DATASETS as MMPOSE_DATASETS

from turtle_plugin.datasets import default_pose_metainfo
from .helpers import MMPOSE_TESTDATA

SETS = {
    'ak': ('test_animalkingdom.json', 23), 'animalpose': ('test_animalpose.json', 20),
    'ap10k': ('test_ap10k.json', 17), 'atrw': ('test_atrw.json', 15),
    'coco': ('test_coco.json', 17), 'fly': ('test_fly.json', 32),
    'horse10': ('test_horse10.json', 22), 'locust': ('test_locust.json', 35),
    'macaque': ('test_macaque.json', 17), 'zebra': ('test_zebra.json', 9)
}


def pose_dataset_cfg(name, pipeline=()):
    """Config snippet: MMPose CocoDataset, bottom-up, metainfo made for this K."""
    ann_file, k = SETS[name]
    return dict(
        type='CocoDataset',
        data_root=str(MMPOSE_TESTDATA / name),
        ann_file=ann_file,
        data_prefix=dict(img=''),
        data_mode='bottomup',
        metainfo=default_pose_metainfo(k, dataset_name=f'{name}_test'),
        pipeline=list(pipeline))


@pytest.mark.parametrize('name', sorted(SETS))
def test_mmpose_coco_dataset_bottomup(name):
    init_default_scope('mmpose')
    ann_file, k = SETS[name]
    coco = json.loads((MMPOSE_TESTDATA / name / ann_file).read_text())
    dataset = MMPOSE_DATASETS.build(pose_dataset_cfg(name))
    assert dataset.metainfo['num_keypoints'] == k
    anns_by_image = {}
    for ann in coco['annotations']:
        anns_by_image.setdefault(ann['image_id'], []).append(ann)
    assert len(dataset) == len(anns_by_image)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        raw = np.array([a['keypoints'] for a in anns_by_image[info['img_id']]]).reshape(-1, k, 3)
        assert info['keypoints'].shape == (len(raw), k, 2)
        np.testing.assert_allclose(info['keypoints'], raw[..., :2], atol=1e-3)
        np.testing.assert_array_equal(info['keypoints_visible'], np.minimum(1, raw[..., 2]))


def test_multi_person_image_and_visibility_flags():
    init_default_scope('mmpose')
    dataset = MMPOSE_DATASETS.build(pose_dataset_cfg('coco'))
    counts = [len(dataset.get_data_info(i)['bbox']) for i in range(len(dataset))]
    assert sum(counts) == 14 and max(counts) > 1
    vis = np.concatenate([dataset.get_data_info(i)['keypoints_visible'].ravel()
                          for i in range(len(dataset))])
    assert set(vis.tolist()) == {0., 1.}  # COCO v = 1 and v = 2 both become visible


def test_plugin_transforms_on_mmpose_coco_samples():
    init_default_scope('mmpose')
    pipeline = [dict(type='LoadImage'), dict(type='KptLetterResize', scale=(320, 320)),
                dict(type='KptRandomFlip', prob=1.),
                dict(type='GenerateTarget', encoder=dict(type='YOLOXPoseAnnotationProcessor')),
                dict(type='PackPoseInputs')]
    dataset = MMPOSE_DATASETS.build(pose_dataset_cfg('locust', pipeline))
    labels = dataset[0]['data_samples'].gt_instance_labels
    assert labels.keypoints.shape == (1, 35, 2) and labels.keypoints_visible.shape == (1, 35)
    assert labels.labels.tolist() == [0]


def test_mmdet_coco_dataset_detection_only():
    init_default_scope('mmdet')
    dataset = MMDET_DATASETS.build(dict(
        type='CocoDataset',
        data_root=str(MMPOSE_TESTDATA / 'coco'),
        ann_file='test_coco.json',
        data_prefix=dict(img=''),
        metainfo=dict(classes=('person', )),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                  dict(type='PackDetInputs')]))
    coco = json.loads((MMPOSE_TESTDATA / 'coco' / 'test_coco.json').read_text())
    assert len(dataset) == len(coco['images'])
    total = 0
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        expected = [a['bbox'] for a in coco['annotations'] if a['image_id'] == sample.img_id]
        boxes = sample.gt_instances.bboxes.tensor.numpy()
        np.testing.assert_allclose(boxes[:, 2:] - boxes[:, :2],
                                   np.array(expected)[:, 2:], atol=1e-3)
        total += len(boxes)
    assert total == 14
