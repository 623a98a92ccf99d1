"""Evaluation helpers shared by the metrics: COCO box AP, match pooling, PR/F1, keypoint errors."""
from .coco_box_eval import BBOX_METRIC_ITEMS, coco_box_eval
from .coco_matching import DetectionMatches, detection_matches
from .keypoint_errors import keypoint_errors
from .pr_curve import pr_f1_curve, save_pr_curve

__all__ = [
    'BBOX_METRIC_ITEMS', 'coco_box_eval', 'DetectionMatches', 'detection_matches',
    'keypoint_errors', 'pr_f1_curve', 'save_pr_curve'
]
