from .focal_loss import YOLOBCEWithLogitsLoss, YOLOFocalLoss
from .iou_loss import YOLOCIoULoss, bbox_ciou
from .oks_loss import YOLOPoseOKSLoss
from .utils import weight_reduce_loss

__all__ = [
    'YOLOBCEWithLogitsLoss', 'YOLOFocalLoss', 'YOLOCIoULoss', 'bbox_ciou', 'YOLOPoseOKSLoss',
    'weight_reduce_loss'
]
