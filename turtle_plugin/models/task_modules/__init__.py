from .assigners import YOLOv5Assigner, YOLOv7OTAAssigner, batched_box_iou
from .post_processing import filter_and_nms

__all__ = ['YOLOv5Assigner', 'YOLOv7OTAAssigner', 'batched_box_iou', 'filter_and_nms']
