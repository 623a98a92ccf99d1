from .yolov7_optim_constructor import YOLOv7OptimWrapperConstructor, yolov7_param_groups

__all__ = ['YOLOv7OptimWrapperConstructor', 'yolov7_param_groups']
