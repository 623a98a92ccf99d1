from .focal_loss import YOLOBCEWithLogitsLoss, YOLOFocalLoss
from .iou_loss import YOLOCIoULoss, bbox_ciou
from .kpt_l1_loss import KptScaledL1Loss
from .oks_loss import YOLOPoseOKSLoss
from .utils import reduce_keypoint_loss, weight_reduce_loss

__all__ = [
    'YOLOBCEWithLogitsLoss', 'YOLOFocalLoss', 'YOLOCIoULoss', 'bbox_ciou', 'YOLOPoseOKSLoss',
    'KptScaledL1Loss', 'weight_reduce_loss', 'reduce_keypoint_loss'
]
