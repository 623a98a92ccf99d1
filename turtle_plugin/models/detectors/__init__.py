from .channel_check import check_feature_channels
from .yolov7_detector import YOLOv7Detector
from .yolov7_pose_estimator import YOLOv7PoseEstimator

__all__ = ['YOLOv7Detector', 'YOLOv7PoseEstimator', 'check_feature_channels']
