from .autoanchor_hook import AutoAnchorHook
from .close_mosaic_hook import CloseMosaicHook
from .deferred_runtime_info_hook import DeferredRuntimeInfoHook
from .divergence_check_hook import (DIVERGED_FILE, DivergenceCheckHook, TrainingDiverged,
                                    first_non_finite)
from .epoch_seed_hook import EpochSeedHook, epoch_seed
from .kpt_sigma_warmup_hook import KptSigmaWarmupHook
from .kpt_visualization_hook import KptVisualizationHook
from .progress_bar_hook import ProgressBarHook
from .speed_hooks import ChannelsLastHook, CompileModelHook
from .yolov7_param_scheduler_hook import YOLOv7ParamSchedulerHook

__all__ = [
    'DIVERGED_FILE', 'AutoAnchorHook', 'ChannelsLastHook', 'CloseMosaicHook', 'CompileModelHook',
    'DeferredRuntimeInfoHook', 'DivergenceCheckHook', 'EpochSeedHook', 'KptSigmaWarmupHook',
    'KptVisualizationHook', 'ProgressBarHook', 'TrainingDiverged', 'YOLOv7ParamSchedulerHook',
    'epoch_seed', 'first_non_finite'
]
