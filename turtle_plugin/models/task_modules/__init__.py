from .anchors import (anchor_ratio_metric, anchors_to_levels, check_anchor_fit, gt_box_sizes,
                      kmeans_anchors)
from .assigners import (YOLOv5Assigner, YOLOv7OTAAssigner, batched_box_iou,
                        batched_keypoint_oks)
from .post_processing import filter_and_nms

__all__ = [
    'YOLOv5Assigner', 'YOLOv7OTAAssigner', 'batched_box_iou', 'batched_keypoint_oks',
    'filter_and_nms',
    'anchor_ratio_metric', 'anchors_to_levels', 'check_anchor_fit', 'gt_box_sizes', 'kmeans_anchors'
]
