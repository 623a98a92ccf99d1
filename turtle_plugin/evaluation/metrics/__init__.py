"""Metrics: COCO keypoint + box AP of keypoint models, box P/R/F1 for detection models."""
from .box_pr_metric import BoxPRMetric
from .kpt_box_coco_metric import KptBoxCocoMetric

__all__ = ['BoxPRMetric', 'KptBoxCocoMetric']
