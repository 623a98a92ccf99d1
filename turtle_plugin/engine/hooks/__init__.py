from .autoanchor_hook import AutoAnchorHook
from .close_mosaic_hook import CloseMosaicHook
from .epoch_seed_hook import EpochSeedHook, epoch_seed
from .yolov7_param_scheduler_hook import YOLOv7ParamSchedulerHook

__all__ = [
    'AutoAnchorHook', 'CloseMosaicHook', 'EpochSeedHook', 'YOLOv7ParamSchedulerHook', 'epoch_seed'
]
