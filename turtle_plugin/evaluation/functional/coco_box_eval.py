"""COCO box AP with pycocotools, set up exactly as MMDetection's ``CocoMetric(metric='bbox')``.

Same ``COCOeval`` parameters (categories, all images of the ground truth, ``maxDets`` =
``proposal_nums`` = (100, 300, 1000), IoU 0.50:0.95) and the same metric names (``bbox_mAP``,
``bbox_mAP_50`` ...), so numbers compare with published MMDetection results. One difference:
MMDetection rounds each value to 3 decimals, these are returned unrounded.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = ['BBOX_METRIC_ITEMS', 'coco_box_eval']

# MMDetection's default bbox metric items, in the order of ``COCOeval.stats``
BBOX_METRIC_ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def coco_box_eval(coco_gt: COCO, detections: List[dict], cat_ids: Sequence[int],
                  img_ids: Optional[Sequence[int]] = None,
                  max_dets: Sequence[int] = (100, 300, 1000),
                  iou_thrs: Optional[Sequence[float]] = None
                  ) -> Tuple[Dict[str, float], Optional[COCOeval]]:
    """Run ``COCOeval(iouType='bbox')`` on COCO-format box results.

    Args:
        coco_gt (COCO): pycocotools ground truth.
        detections (list[dict]): COCO results, ``image_id``, ``category_id``, ``bbox`` (xywh,
            original image pixels) and ``score``; extra keys ride along into ``cocoDt``.
        cat_ids (Sequence[int]): categories evaluated.
        img_ids (Sequence[int], optional): images evaluated; all images of ``coco_gt`` when
            None (MMDetection's choice).
        max_dets (Sequence[int]): ``params.maxDets`` (MMDetection's ``proposal_nums``): at
            least three numbers, one of them 100, as ``COCOeval.summarize`` reads AP at 100
            detections and the third entry.
        iou_thrs (Sequence[float], optional): ``params.iouThrs``; 0.50:0.05:0.95 when None.

    Returns:
        tuple: ``{'bbox_mAP': ..., 'bbox_mAP_50': ..., ...}`` and the evaluated ``COCOeval``
        (None when there is no detection at all: every AP is then 0).
    """
    if len(max_dets) < 3 or 100 not in max_dets:
        raise ValueError(f'max_dets must hold at least three numbers including 100 '
                         f'(COCOeval.summarize reads those), got {list(max_dets)}')
    if not detections:
        return {f'bbox_{item}': 0.0 for item in BBOX_METRIC_ITEMS}, None
    coco_dt = coco_gt.loadRes(detections)
    coco_eval = COCOeval(coco_gt, coco_dt, 'bbox')
    coco_eval.params.catIds = list(cat_ids)
    coco_eval.params.imgIds = list(coco_gt.getImgIds() if img_ids is None else img_ids)
    coco_eval.params.maxDets = list(max_dets)
    if iou_thrs is not None:
        coco_eval.params.iouThrs = np.asarray(iou_thrs, dtype=np.float64)
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    metrics = {
        f'bbox_{item}': float(coco_eval.stats[i])
        for i, item in enumerate(BBOX_METRIC_ITEMS)
    }
    return metrics, coco_eval
