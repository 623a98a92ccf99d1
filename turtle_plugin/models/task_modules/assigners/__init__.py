from .yolov5_assigner import YOLOv5Assigner
from .yolov7_ota_assigner import YOLOv7OTAAssigner, batched_box_iou, batched_keypoint_oks

__all__ = ['YOLOv5Assigner', 'YOLOv7OTAAssigner', 'batched_box_iou', 'batched_keypoint_oks']
