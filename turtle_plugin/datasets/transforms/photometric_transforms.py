"""Colour augmentation: random gains in HSV space (YOLOv7 ``augment_hsv``)."""
from typing import Dict

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from turtle_plugin.registry import TRANSFORMS

__all__ = ['KptHSVRandomAug']


@TRANSFORMS.register_module()
class KptHSVRandomAug(BaseTransform):
    """Multiply hue, saturation and value by random gains ``1 + U(-g, g)``.

    Works on uint8 BGR images through lookup tables, as YOLOv7 (one 3-channel table rather than
    split channels); hue wraps around OpenCV's 0..179 range, saturation and value are clipped to
    0..255. Boxes and keypoints are untouched. Defaults are YOLOv7's ``hsv_h``, ``hsv_s``,
    ``hsv_v``.

    Args:
        hue (float): hue gain range.
        saturation (float): saturation gain range.
        value (float): value (brightness) gain range.
    """

    def __init__(self, hue: float = 0.015, saturation: float = 0.7, value: float = 0.4):
        self.hue = hue
        self.saturation = saturation
        self.value = value

    def transform(self, results: Dict) -> Dict:
        img = results['img']
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError('KptHSVRandomAug expects a uint8 BGR image of shape (H, W, 3), got '
                             f'{img.dtype} {img.shape}')
        gains = np.random.uniform(-1, 1, 3) * [self.hue, self.saturation, self.value] + 1
        x = np.arange(256, dtype=np.float64)
        lut = np.empty((256, 1, 3), np.uint8)  # one table per HSV channel, applied in one pass
        lut[:, 0, 0] = (x * gains[0]) % 180
        lut[:, 0, 1] = np.clip(x * gains[1], 0, 255)
        lut[:, 0, 2] = np.clip(x * gains[2], 0, 255)
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        results['img'] = cv2.cvtColor(cv2.LUT(hsv, lut, dst=hsv), cv2.COLOR_HSV2BGR)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(hue={self.hue}, saturation={self.saturation}, '
                f'value={self.value})')
