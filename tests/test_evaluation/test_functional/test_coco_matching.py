"""detection_matches: a hand-built box case, and agreement with COCOeval.accumulate."""
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from turtle_plugin.evaluation.functional import detection_matches, pr_f1_curve
from ..helpers import TURTLE_NAMES, TURTLE_SIGMAS, direct_box_stats, direct_kpt_stats, make_ann, \
    quiet, write_coco


def _box_eval(tmp_path, dets):
    k = len(TURTLE_NAMES)
    anns = [make_ann(1, 7, [0, 0, 100, 100], np.zeros((k, 3))),
            make_ann(2, 7, [200, 0, 100, 100], np.zeros((k, 3))),
            make_ann(3, 7, [0, 200, 100, 100], np.zeros((k, 3))),
            make_ann(4, 7, [300, 300, 100, 100], np.zeros((k, 3)), iscrowd=1)]
    ann_file = write_coco(tmp_path / 'gt.json', [(7, 640, 480)], anns, TURTLE_NAMES)

    def run():
        gt = COCO(ann_file)
        ev = COCOeval(gt, gt.loadRes(dets), 'bbox')
        ev.evaluate()
        return ev

    return quiet(run)


def test_hand_built_matches(tmp_path):
    dets = [  # loadRes numbers them 1..5 in this order
        dict(image_id=7, category_id=1, bbox=[0, 0, 100, 100], score=0.9),      # = GT 1
        dict(image_id=7, category_id=1, bbox=[240, 0, 100, 100], score=0.8),    # GT 2 IoU 0.43
        dict(image_id=7, category_id=1, bbox=[0, 210, 100, 100], score=0.7),    # GT 3 IoU 0.82
        dict(image_id=7, category_id=1, bbox=[2, 0, 100, 100], score=0.6),      # GT 1 again
        dict(image_id=7, category_id=1, bbox=[320, 320, 50, 50], score=0.5),    # in the crowd
    ]
    m = detection_matches(_box_eval(tmp_path, dets), iou_thr=0.5, max_det=100)
    np.testing.assert_array_equal(m.scores, [0.9, 0.8, 0.7, 0.6])  # crowd match dropped
    np.testing.assert_array_equal(m.is_tp, [True, False, True, False])
    np.testing.assert_array_equal(m.dt_ids, [1, 2, 3, 4])
    np.testing.assert_array_equal(m.gt_ids[m.is_tp], [1, 3])
    assert m.num_gt == 3  # the crowd region is not a ground truth to find
    # at IoU 0.85 detection 3 (IoU 0.82) no longer matches
    strict = detection_matches(_box_eval(tmp_path, dets), iou_thr=0.85, max_det=100)
    np.testing.assert_array_equal(strict.is_tp, [True, False, False, False])
    # max_det keeps the best-scored detections of each image
    top2 = detection_matches(_box_eval(tmp_path, dets), iou_thr=0.5, max_det=2)
    np.testing.assert_array_equal(top2.scores, [0.9, 0.8])


def _interpolated_precision(scores, is_tp, num_gt, rec_thrs):
    """COCOeval.accumulate's precision envelope sampled at rec_thrs, from a raw curve."""
    curve = pr_f1_curve(scores, is_tp, num_gt)
    pr, rc = curve['precision'].tolist(), curve['recall']
    for i in range(len(pr) - 1, 0, -1):
        pr[i - 1] = max(pr[i - 1], pr[i])
    inds = np.searchsorted(rc, rec_thrs, side='left')
    return np.array([pr[i] if i < len(pr) else 0. for i in inds]), curve


@pytest.mark.parametrize('kind', ['bbox', 'keypoints'])
def test_agrees_with_accumulate(turtle_case, kind):
    """The raw curve's precision envelope is COCOeval's interpolated precision, at every IoU
    (OKS) threshold; its last recall is COCOeval's recall. (The fixture's scores are distinct,
    so a per-score curve is a per-detection curve.)"""
    ann_file, samples, _ = turtle_case
    ev = direct_box_stats(ann_file, samples) if kind == 'bbox' else \
        direct_kpt_stats(ann_file, samples, TURTLE_SIGMAS)
    p = ev.params
    m_idx = len(p.maxDets) - 1
    for t, thr in enumerate(p.iouThrs):
        m = detection_matches(ev, thr, p.maxDets[m_idx])
        q, curve = _interpolated_precision(m.scores, m.is_tp, m.num_gt, p.recThrs)
        np.testing.assert_allclose(q, ev.eval['precision'][t, :, 0, 0, m_idx], rtol=0,
                                   atol=1e-12)
        assert curve['recall'][-1] == pytest.approx(ev.eval['recall'][t, 0, 0, m_idx], abs=1e-12)


def test_rejects_unknown_threshold_and_unevaluated(tmp_path):
    dets = [dict(image_id=7, category_id=1, bbox=[0, 0, 100, 100], score=0.9)]
    ev = _box_eval(tmp_path, dets)
    with pytest.raises(ValueError, match='iou_thr 0.52 is not one of'):
        detection_matches(ev, 0.52)
    with pytest.raises(ValueError, match='max_det 101 exceeds'):
        detection_matches(ev, 0.5, max_det=101)
    fresh = COCOeval(ev.cocoGt, ev.cocoDt, 'bbox')
    with pytest.raises(ValueError, match='evaluate'):
        detection_matches(fresh, 0.5)
