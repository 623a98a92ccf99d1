from .kpt_branch import KptBranch
from .yolov7_head import YOLOv7Head
from .yolov7_head_core import YOLOV7_P5_ANCHORS, YOLOv7HeadCore
from .yolov7_head_module import ImplicitA, ImplicitM, YOLOv7HeadModule
from .yolov7_kpt_head import YOLOv7KptHead

__all__ = [
    'YOLOV7_P5_ANCHORS', 'YOLOv7HeadCore', 'KptBranch', 'YOLOv7Head', 'YOLOv7KptHead',
    'ImplicitA', 'ImplicitM', 'YOLOv7HeadModule'
]
