"""BoxPRMetric: hand-computed P/R/F1, MMDetection's two ground-truth sources, next to
mmdet.CocoMetric in one evaluator, and the same numbers as KptBoxCocoMetric's box curve."""
import copy
import json
import math

import numpy as np
import pytest
import torch
from mmdet.registry import METRICS as MMDET_METRICS
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

from turtle_plugin.evaluation import BoxPRMetric, KptBoxCocoMetric
from ..helpers import TURTLE_NAMES, TURTLE_SIGMAS, make_ann, pose_metainfo, quiet, write_coco

GT_BOXES = {1: [0, 0, 100, 100], 2: [200, 0, 100, 100], 3: [0, 200, 100, 100]}
CROWD = [300, 300, 100, 100]
# by score: = GT 1 (TP), IoU 0.43 with GT 2 (FP), IoU 0.82 with GT 3 (TP), GT 1 again (FP),
# inside the crowd region (ignored)
PRED_BOXES = [[0, 0, 100, 100], [240, 0, 340, 100], [0, 210, 100, 310], [2, 0, 102, 100],
              [320, 320, 370, 370]]
PRED_SCORES = [0.9, 0.8, 0.7, 0.6, 0.5]


def det_sample(img_id, boxes, scores, labels=None, instances=None):
    """A DetDataSample as a dict, the form ``Evaluator.process`` hands to metrics."""
    n = len(boxes)
    sample = dict(img_id=img_id, ori_shape=(480, 640), pred_instances=dict(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
        scores=torch.tensor(scores, dtype=torch.float32),
        labels=torch.zeros(n, dtype=torch.long) if labels is None else torch.tensor(labels)))
    if instances is not None:
        sample['instances'] = instances
    return sample


@pytest.fixture
def box_case(tmp_path):
    k = len(TURTLE_NAMES)
    anns = [make_ann(i, 7, box, np.zeros((k, 3))) for i, box in GT_BOXES.items()]
    anns.append(make_ann(4, 7, CROWD, np.zeros((k, 3)), iscrowd=1))
    ann_file = write_coco(tmp_path / 'gt.json', [(7, 640, 480)], anns, TURTLE_NAMES)
    instances = [dict(bbox=[x, y, x + w, y + h], bbox_label=0, ignore_flag=int(a['iscrowd']))
                 for a in anns for x, y, w, h in [a['bbox']]]
    return ann_file, det_sample(7, PRED_BOXES, PRED_SCORES, instances=instances)


def run(metric, samples):
    metric.process({}, copy.deepcopy(samples))
    return quiet(metric.evaluate, len(samples))


def test_hand_computed_from_ann_file(box_case, tmp_path):
    ann_file, sample = box_case
    metric = MMDET_METRICS.build(
        dict(type='BoxPRMetric', ann_file=ann_file, outfile_prefix=str(tmp_path / 'o' / 'det')))
    metric.dataset_meta = dict(classes=('animal', ))
    res = run(metric, [sample])
    # TP FP TP FP (crowd match ignored), 3 GTs: best at 0.7, P = R = F1 = 2/3
    assert res.keys() == {'pr/box_precision', 'pr/box_recall', 'pr/box_f1', 'pr/box_best_thr'}
    assert res['pr/box_best_thr'] == pytest.approx(0.7)
    for key in ('pr/box_precision', 'pr/box_recall', 'pr/box_f1'):
        assert res[key] == pytest.approx(2 / 3, abs=1e-12)
    record = json.loads((tmp_path / 'o' / 'det.box_pr.json').read_text())
    assert (record['num_gt'], record['num_pred']) == (3, 4)
    assert record['curve']['recall'] == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert (tmp_path / 'o' / 'det.box_pr.png').is_file()


def test_hand_computed_from_instances(box_case):
    """Without ann_file the samples' ``instances`` are converted as mmdet.CocoMetric does."""
    _, sample = box_case
    metric = BoxPRMetric()
    metric.dataset_meta = dict(classes=('animal', ))
    res = run(metric, [sample])
    assert res['pr/box_best_thr'] == pytest.approx(0.7)
    assert res['pr/box_f1'] == pytest.approx(2 / 3, abs=1e-12)


def test_stricter_iou_and_max_dets(box_case):
    ann_file, sample = box_case
    metric = BoxPRMetric(ann_file=ann_file, iou_thr=0.85)
    metric.dataset_meta = dict(classes=('animal', ))
    # IoU 0.82 no longer matches: TP FP FP FP -> best at 0.9, P 1, R 1/3, F1 1/2
    res = run(metric, [sample])
    assert (res['pr/box_best_thr'], res['pr/box_precision']) == (pytest.approx(0.9), 1.0)
    assert res['pr/box_f1'] == pytest.approx(0.5)
    top1 = BoxPRMetric(ann_file=ann_file, max_dets=1)
    top1.dataset_meta = dict(classes=('animal', ))
    assert run(top1, [sample])['pr/box_recall'] == pytest.approx(1 / 3)


def test_beside_mmdet_coco_metric_in_one_evaluator(box_case):
    ann_file, sample = box_case
    with DefaultScope.overwrite_default_scope('mmdet'):
        evaluator = Evaluator([dict(type='CocoMetric', ann_file=ann_file),
                               dict(type='BoxPRMetric', ann_file=ann_file)])
    evaluator.dataset_meta = dict(classes=('animal', ))
    evaluator.process([sample])
    res = quiet(evaluator.evaluate, 1)
    assert {'coco/bbox_mAP', 'pr/box_f1'} <= res.keys()
    assert res['pr/box_f1'] == pytest.approx(2 / 3, abs=1e-12)


def test_no_detections(box_case):
    ann_file, _ = box_case
    metric = BoxPRMetric(ann_file=ann_file)
    metric.dataset_meta = dict(classes=('animal', ))
    res = run(metric, [det_sample(7, [], [])])
    assert res['pr/box_f1'] == 0.0 and res['pr/box_recall'] == 0.0
    assert math.isnan(res['pr/box_best_thr'])


def test_same_curve_as_kpt_box_coco_metric(turtle_case):
    """The detection metric and the keypoint metric's box part share one implementation."""
    ann_file, samples, _ = turtle_case
    kpt_metric = KptBoxCocoMetric(ann_file=ann_file, score_mode='bbox', nms_mode='none')
    kpt_metric.dataset_meta = pose_metainfo(TURTLE_NAMES, TURTLE_SIGMAS)
    kpt_res = run(kpt_metric, samples)
    det_metric = BoxPRMetric(ann_file=ann_file)
    det_metric.dataset_meta = dict(classes=('animal', ))
    det_res = run(det_metric, [
        det_sample(s['img_id'], s['pred_instances']['bboxes'].tolist(),
                   s['pred_instances']['bbox_scores'].tolist()) for s in samples
    ])
    for key in ('pr/box_precision', 'pr/box_recall', 'pr/box_f1', 'pr/box_best_thr'):
        assert det_res[key] == pytest.approx(kpt_res[key], abs=1e-12), key
