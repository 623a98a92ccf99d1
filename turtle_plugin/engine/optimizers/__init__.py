from .yolov7_optim_constructor import (YOLOv7OptimWrapperConstructor, scale_weight_decay,
                                       yolov7_param_groups)

__all__ = ['YOLOv7OptimWrapperConstructor', 'scale_weight_decay', 'yolov7_param_groups']
