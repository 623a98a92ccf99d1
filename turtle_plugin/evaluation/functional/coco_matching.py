"""Per-detection match results read from an evaluated ``COCOeval`` (pycocotools or xtcocotools).

``COCOeval.evaluate()`` matches detections to ground truths image by image (greedy by score,
each detection takes the unmatched ground truth of highest IoU / OKS above the threshold, crowd
and ignored ground truths absorb detections without counting them). ``accumulate()`` then pools
the matches of all images and interpolates precision. :func:`detection_matches` stops before
the interpolation: it returns the same pooled matches at one threshold, so precision, recall and
F1 can be read at any confidence threshold, and the matched pairs can be inspected.
"""
from typing import NamedTuple

import numpy as np

__all__ = ['DetectionMatches', 'detection_matches']


class DetectionMatches(NamedTuple):
    """Matches of the non-ignored detections of all images, in ``COCOeval``'s order.

    Attributes:
        scores (np.ndarray): (D,) detection scores.
        is_tp (np.ndarray): (D,) bool, the detection matched a non-ignored ground truth.
        dt_ids (np.ndarray): (D,) int64 detection annotation ids (of ``cocoDt``).
        gt_ids (np.ndarray): (D,) int64 id of the matched ground truth; meaningless where
            ``is_tp`` is False.
        num_gt (int): number of non-ignored ground truths (the recall denominator).
    """
    scores: np.ndarray
    is_tp: np.ndarray
    dt_ids: np.ndarray
    gt_ids: np.ndarray
    num_gt: int


def detection_matches(coco_eval, iou_thr: float = 0.5, max_det: int = 100,
                      area_index: int = 0) -> DetectionMatches:
    """Pool the per-image matches of an evaluated ``COCOeval`` at one IoU / OKS threshold.

    Reads ``coco_eval.evalImgs`` exactly as ``COCOeval.accumulate`` does for one category-pooled
    curve: every image and category of the area range ``params.areaRng[area_index]``, the
    ``max_det`` highest-scored detections of each, detections flagged ``dtIgnore`` dropped,
    ground truths flagged ``gtIgnore`` not counted. A detection is a true positive when its
    ``dtMatches`` entry is one of the image's ground-truth ids (pycocotools marks unmatched
    detections with 0, xtcocotools with -1; this test reads both).

    Args:
        coco_eval (COCOeval): a pycocotools or xtcocotools ``COCOeval`` after ``evaluate()``.
        iou_thr (float): the IoU (boxes) or OKS (keypoints) threshold; must be one of
            ``coco_eval.params.iouThrs``.
        max_det (int): detections per image and category kept, highest score first, as
            ``accumulate`` does for ``maxDets``; must not exceed ``params.maxDets[-1]``, the
            number ``evaluate()`` kept.
        area_index (int): index into ``params.areaRng``; 0 is ``'all'``.

    Returns:
        DetectionMatches: the pooled matches, categories pooled (micro average).
    """
    params = coco_eval.params
    if not isinstance(coco_eval.evalImgs, list):  # a defaultdict until evaluate() runs
        raise ValueError('detection_matches needs a COCOeval on which evaluate() has run')
    thrs = np.asarray(params.iouThrs, dtype=np.float64)
    hits = np.nonzero(np.isclose(thrs, iou_thr))[0]
    if len(hits) == 0:
        raise ValueError(f'iou_thr {iou_thr} is not one of the COCOeval thresholds '
                         f'{thrs.tolist()}')
    t = int(hits[0])
    if max_det > max(params.maxDets):
        raise ValueError(f'max_det {max_det} exceeds the {max(params.maxDets)} detections per '
                         f'image that COCOeval.evaluate() kept (params.maxDets)')
    area = list(params.areaRng[area_index])
    scores, is_tp, dt_ids, gt_ids = [], [], [], []
    num_gt = 0
    for e in coco_eval.evalImgs:
        if e is None or list(e['aRng']) != area:
            continue
        num_gt += int(np.count_nonzero(np.asarray(e['gtIgnore']) == 0))
        matched = np.asarray(e['dtMatches'], dtype=np.int64).reshape(len(thrs), -1)[t, :max_det]
        ignored = np.asarray(e['dtIgnore'], dtype=bool).reshape(len(thrs), -1)[t, :max_det]
        keep = ~ignored
        scores.append(np.asarray(e['dtScores'], dtype=np.float64)[:max_det][keep])
        is_tp.append(np.isin(matched, np.asarray(e['gtIds'], dtype=np.int64))[keep])
        dt_ids.append(np.asarray(e['dtIds'], dtype=np.int64)[:max_det][keep])
        gt_ids.append(matched[keep])
    if not scores:
        empty = np.zeros(0)
        return DetectionMatches(empty, empty.astype(bool), empty.astype(np.int64),
                                empty.astype(np.int64), num_gt)
    return DetectionMatches(
        np.concatenate(scores), np.concatenate(is_tp), np.concatenate(dt_ids),
        np.concatenate(gt_ids), num_gt)
