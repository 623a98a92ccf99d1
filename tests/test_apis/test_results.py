"""result_to_dict: plain JSON values for both kinds of data sample, names from the metainfo."""
import json

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from mmpose.structures import PoseDataSample

from turtle_plugin.apis import instances_to_arrays, result_to_dict


def _pose_sample():
    sample = PoseDataSample(metainfo=dict(img_path='a.jpg', ori_shape=(720, 1280)))
    sample.pred_instances = InstanceData(
        bboxes=np.array([[10, 20, 110, 220], [0, 0, 5, 5]], np.float32),
        scores=np.array([0.9, 0.1], np.float32), labels=np.array([0, 0]),
        keypoints=np.array([[[15, 25], [50, 60]], [[1, 1], [2, 2]]], np.float32),
        keypoint_scores=np.array([[1.0, 0.5], [0.2, 0.3]], np.float32))
    return sample


def test_pose_result_to_dict():
    meta = dict(classes=('turtle', ), keypoint_id2name={0: 'head', 1: 'tail'})
    out = result_to_dict(_pose_sample(), meta, score_thr=0.5)
    assert out == dict(
        img_path='a.jpg', height=720, width=1280, keypoint_names=['head', 'tail'],
        instances=[dict(bbox=[10., 20., 110., 220.], score=out['instances'][0]['score'],
                        label=0, label_name='turtle', keypoints=[[15., 25.], [50., 60.]],
                        keypoint_scores=[1.0, 0.5])])
    assert abs(out['instances'][0]['score'] - 0.9) < 1e-6
    assert json.loads(json.dumps(out)) == out  # plain Python values only
    assert len(result_to_dict(_pose_sample())['instances']) == 2  # no threshold


def test_detection_result_to_dict_without_metainfo():
    sample = DetDataSample(metainfo=dict(ori_shape=(100, 200)))
    sample.pred_instances = InstanceData(bboxes=torch.tensor([[1., 2., 3., 4.]]),
                                         scores=torch.tensor([0.75]), labels=torch.tensor([2]))
    out = result_to_dict(sample)
    assert out == dict(img_path=None, height=100, width=200, instances=[
        dict(bbox=[1., 2., 3., 4.], score=0.75, label=2, label_name='2')])
    arrays = instances_to_arrays(sample, score_thr=0.8)
    assert arrays['bboxes'].shape == (0, 4) and arrays['labels'].dtype == np.int64
