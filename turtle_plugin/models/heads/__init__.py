from .yolov7_head import YOLOV7_P5_ANCHORS, YOLOv7Head
from .yolov7_head_module import ImplicitA, ImplicitM, YOLOv7HeadModule
from .yolov7_kpt_head import YOLOv7KptHead

__all__ = [
    'YOLOV7_P5_ANCHORS', 'YOLOv7Head', 'ImplicitA', 'ImplicitM', 'YOLOv7HeadModule',
    'YOLOv7KptHead'
]
