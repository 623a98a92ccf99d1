"""YOLOv7 as an MMDetection single-stage detector: backbone -> neck -> ``YOLOv7Head``."""
from typing import List, Optional, Union

import torch
from mmdet.models.detectors import SingleStageDetector
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.dist import get_world_size
from mmengine.logging import print_log

from .channel_check import check_feature_channels

__all__ = ['YOLOv7Detector']


@MMDET_MODELS.register_module()
class YOLOv7Detector(SingleStageDetector):
    """MMDetection's ``SingleStageDetector`` with optional SyncBatchNorm.

    The head (``YOLOv7Head``) implements MMDetection's ``loss``/``predict``/``forward``;
    predictions come back in original-image pixels (letterbox padding and scale undone). When
    built, the neck's and the head module's ``in_channels`` are checked against what the part
    before them outputs (:func:`check_feature_channels`).

    Args:
        backbone (dict): backbone config.
        neck (dict, optional): neck config; None feeds the backbone's outputs to the head.
        bbox_head (dict): head config, normally ``YOLOv7Head``.
        train_cfg (dict, optional): passed to the head (YOLOv7Head takes no assigner here).
        test_cfg (dict, optional): post-processing config passed to the head.
        data_preprocessor (dict, optional): MMDetection data preprocessor config.
        use_syncbn (bool): convert BatchNorm layers to SyncBatchNorm when training on more
            than one process.
        init_cfg (dict | list[dict], optional): MMEngine initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict],
                 bbox_head: dict,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 use_syncbn: bool = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(backbone=backbone, neck=neck, bbox_head=bbox_head, train_cfg=train_cfg,
                         test_cfg=test_cfg, data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        check_feature_channels(self.backbone, self.neck if self.with_neck else None,
                               getattr(self.bbox_head, 'head_module', None), 'bbox_head')
        if use_syncbn and get_world_size() > 1:
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(self)
            print_log('YOLOv7Detector: using SyncBatchNorm', logger='current')
