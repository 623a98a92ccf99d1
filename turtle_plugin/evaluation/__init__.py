"""Evaluation: metrics registered into MMPose / MMDetection, and their helper functions."""
from . import functional, metrics
from .functional import (BBOX_METRIC_ITEMS, DetectionMatches, coco_box_eval, detection_matches,
                         keypoint_errors, pr_f1_curve, save_pr_curve)
from .metrics import BoxPRMetric, KptBoxCocoMetric

__all__ = [
    'functional', 'metrics', 'BBOX_METRIC_ITEMS', 'DetectionMatches', 'coco_box_eval',
    'detection_matches', 'keypoint_errors', 'pr_f1_curve', 'save_pr_curve', 'BoxPRMetric',
    'KptBoxCocoMetric'
]
