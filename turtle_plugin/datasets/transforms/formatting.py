"""Key mapping from keypoint results dicts to MMDetection's annotation keys."""
from typing import Dict

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.structures.bbox import HorizontalBoxes

from turtle_plugin.registry import TRANSFORMS

__all__ = ['KptToDetAnnotations']


@TRANSFORMS.register_module()
class KptToDetAnnotations(BaseTransform):
    """Expose the MMPose-style instance arrays under MMDetection's keys.

    ``bbox`` becomes ``gt_bboxes``, ``category_id - 1`` becomes ``gt_bboxes_labels`` and every
    instance gets ``gt_ignore_flags = False``, so a detection pipeline built from the keypoint
    transforms ends with ``mmdet.PackDetInputs``. The keypoint keys stay for consumers that want
    them.

    Args:
        box_type (str | None): ``'hbox'`` wraps the boxes in ``HorizontalBoxes`` as
            ``mmdet.LoadAnnotations`` does; ``None`` keeps a float32 array.
    """

    def __init__(self, box_type: str = 'hbox'):
        if box_type not in ('hbox', None):
            raise ValueError(f"box_type must be 'hbox' or None, got {box_type!r}")
        self.box_type = box_type

    def transform(self, results: Dict) -> Dict:
        bboxes = np.asarray(results.get('bbox', np.zeros((0, 4))), np.float32).reshape(-1, 4)
        labels = np.asarray(results.get('category_id', np.ones(len(bboxes))), np.int64)
        results['gt_bboxes'] = HorizontalBoxes(bboxes) if self.box_type == 'hbox' else bboxes
        results['gt_bboxes_labels'] = labels.reshape(-1) - 1
        results['gt_ignore_flags'] = np.zeros(len(bboxes), dtype=bool)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(box_type={self.box_type!r})'
