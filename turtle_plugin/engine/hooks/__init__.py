from .autoanchor_hook import AutoAnchorHook
from .close_mosaic_hook import CloseMosaicHook
from .yolov7_param_scheduler_hook import YOLOv7ParamSchedulerHook

__all__ = ['AutoAnchorHook', 'CloseMosaicHook', 'YOLOv7ParamSchedulerHook']
