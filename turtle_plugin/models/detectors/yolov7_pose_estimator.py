"""YOLOv7 as an MMPose bottom-up pose estimator: backbone -> neck -> ``YOLOv7KptHead``."""
from mmpose.models.pose_estimators import BottomupPoseEstimator
from mmpose.registry import MODELS as MMPOSE_MODELS

from .channel_check import check_feature_channels

__all__ = ['YOLOv7PoseEstimator']


@MMPOSE_MODELS.register_module()
class YOLOv7PoseEstimator(BottomupPoseEstimator):
    """MMPose's ``BottomupPoseEstimator`` that checks, when built, that the neck and the head
    module take the channels the part before them outputs (:func:`check_feature_channels`):
    a config that switches ``backbone.arch`` / ``neck.arch`` but not
    ``head.head_module.in_channels`` fails here, naming both sides, instead of with a broadcast
    error in the first forward pass.

    Takes the arguments of ``BottomupPoseEstimator``; the head is normally a ``YOLOv7KptHead``,
    which returns predictions in input pixels for the estimator to map back to the image.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        check_feature_channels(self.backbone, self.neck if self.with_neck else None,
                               getattr(self.head, 'head_module', None), 'head')
