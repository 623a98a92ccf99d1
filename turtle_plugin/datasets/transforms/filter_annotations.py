"""Dropping instances that are too small or have too few visible keypoints."""
from typing import Dict, Optional

import numpy as np
from mmcv.transforms import BaseTransform

from turtle_plugin.registry import TRANSFORMS
from .kpt_geometry import filter_instances, nonempty_boxes, num_instances

__all__ = ['KptFilterAnnotations']


@TRANSFORMS.register_module()
class KptFilterAnnotations(BaseTransform):
    """Drop instances, with their keypoints, whose box is degenerate or too small.

    Args:
        min_box_size (float): boxes must be wider and taller than this (pixels).
        min_visible_keypoints (int): instances need at least this many visible keypoints.
        keep_empty (bool): return the sample when no instance is left; otherwise return
            ``None`` so the dataset draws another sample.
    """

    def __init__(self,
                 min_box_size: float = 2.,
                 min_visible_keypoints: int = 0,
                 keep_empty: bool = True):
        self.min_box_size = min_box_size
        self.min_visible_keypoints = min_visible_keypoints
        self.keep_empty = keep_empty

    def transform(self, results: Dict) -> Optional[Dict]:
        if 'bbox' not in results:
            return results if self.keep_empty else None
        keep = nonempty_boxes(results['bbox'], self.min_box_size)
        if results.get('keypoints_visible') is not None and self.min_visible_keypoints > 0:
            visible = (np.asarray(results['keypoints_visible']) > 0).sum(axis=1)
            keep &= visible >= self.min_visible_keypoints
        filter_instances(results, keep)
        if num_instances(results) == 0 and not self.keep_empty:
            return None
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(min_box_size={self.min_box_size}, '
                f'min_visible_keypoints={self.min_visible_keypoints}, '
                f'keep_empty={self.keep_empty})')
