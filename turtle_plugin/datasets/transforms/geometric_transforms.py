"""Single-image geometric transforms with keypoints: random affine/perspective, flip, letterbox.

``KptRandomAffine`` follows YOLOv7's ``random_perspective`` (``M = T @ S @ R @ P @ C`` and
``box_candidates``), ``KptLetterResize`` its ``letterbox`` (``auto=False``), and both record how
network-input coordinates map back to the original image.
"""
import math
from typing import Dict, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from turtle_plugin.registry import TRANSFORMS
from .kpt_geometry import (box_candidates, filter_instances, flip_bboxes, flip_keypoints,
                           instance_arrays, results_num_keypoints,
                           translate_scale_matrix, warp_instances)

__all__ = ['KptRandomAffine', 'KptRandomFlip', 'KptLetterResize']


def _pad_tuple(pad_val: Union[float, Sequence[float]], img: np.ndarray) -> Tuple[float, ...]:
    channels = 1 if img.ndim == 2 else img.shape[2]
    if isinstance(pad_val, (int, float)):
        return (float(pad_val), ) * channels
    return tuple(float(v) for v in pad_val)


@TRANSFORMS.register_module()
class KptRandomAffine(BaseTransform):
    """Random rotation, scale, shear, translation and perspective (YOLOv7 ``random_perspective``).

    The arguments are YOLOv7's hyper-parameters of the same names (``hyp.scratch.p5.yaml``:
    ``degrees=0, translate=0.2, scale=0.9, shear=0, perspective=0``). The zoom is drawn from
    ``U(1 - scale, 1.1 + scale)`` as in YOLOv7. The output is the input size grown by
    ``2 * border`` (use ``border=(-w // 2, -h // 2)`` after a mosaic of ``2 * (w, h)``).
    Boxes become the box of their transformed corners clipped to the output; keypoints outside
    the output become not visible; instances failing :func:`box_candidates` are dropped with
    their keypoints. Sets ``input_size`` (output ``(w, h)``) and ``warp_mat``.

    Args:
        degrees (float): rotation range in degrees, ``U(-degrees, degrees)``.
        translate (float): translation range as a fraction of the output size.
        scale (float): zoom range, ``U(1 - scale, 1.1 + scale)``.
        shear (float): shear range in degrees.
        perspective (float): perspective range (YOLOv7 suggests 0 to 0.001).
        border (tuple[int, int]): ``(x, y)`` pixels added to each side of the output.
        pad_val (float | Sequence[float]): value of pixels outside the source image.
        min_box_size (float): ``box_candidates`` minimum side in pixels.
        min_area_ratio (float): ``box_candidates`` minimum kept area fraction.
        max_aspect_ratio (float): ``box_candidates`` maximum aspect ratio.
    """

    def __init__(self,
                 degrees: float = 0.,
                 translate: float = 0.2,
                 scale: float = 0.9,
                 shear: float = 0.,
                 perspective: float = 0.,
                 border: Tuple[int, int] = (0, 0),
                 pad_val: Union[float, Sequence[float]] = 114.,
                 min_box_size: float = 2.,
                 min_area_ratio: float = 0.1,
                 max_aspect_ratio: float = 20.):
        if scale >= 1.:
            raise ValueError(f'scale must be < 1 so the zoom 1 - scale stays positive, got {scale}')
        self.degrees = degrees
        self.translate = translate
        self.scale = scale
        self.shear = shear
        self.perspective = perspective
        self.border = tuple(border)
        self.pad_val = pad_val
        self.min_box_size = min_box_size
        self.min_area_ratio = min_area_ratio
        self.max_aspect_ratio = max_aspect_ratio

    def random_matrix(self, img_w: int, img_h: int, out_w: int,
                      out_h: int) -> Tuple[np.ndarray, float]:
        """Draw ``M = T @ S @ R @ P @ C`` (3x3) and its zoom ``s``."""
        center = translate_scale_matrix(1., 1., -img_w / 2, -img_h / 2)
        persp = np.eye(3)
        persp[2, :2] = np.random.uniform(-self.perspective, self.perspective, size=2)
        angle = np.random.uniform(-self.degrees, self.degrees)
        zoom = np.random.uniform(1 - self.scale, 1.1 + self.scale)
        rot = np.eye(3)
        rot[:2] = cv2.getRotationMatrix2D(angle=angle, center=(0, 0), scale=zoom)
        shear = np.eye(3)
        shear[0, 1] = math.tan(np.random.uniform(-self.shear, self.shear) * math.pi / 180)
        shear[1, 0] = math.tan(np.random.uniform(-self.shear, self.shear) * math.pi / 180)
        tx = np.random.uniform(0.5 - self.translate, 0.5 + self.translate) * out_w
        ty = np.random.uniform(0.5 - self.translate, 0.5 + self.translate) * out_h
        shift = translate_scale_matrix(1., 1., tx, ty)
        return shift @ shear @ rot @ persp @ center, zoom

    def transform(self, results: Dict) -> Dict:
        img = results['img']
        img_h, img_w = img.shape[:2]
        out_w, out_h = img_w + 2 * self.border[0], img_h + 2 * self.border[1]
        if out_w <= 0 or out_h <= 0:
            raise ValueError(f'KptRandomAffine: border {self.border} leaves no output for a '
                             f'{img_w}x{img_h} image')
        matrix, zoom = self.random_matrix(img_w, img_h, out_w, out_h)
        pad = _pad_tuple(self.pad_val, img)
        # OpenCV warps pixel indices; boxes and keypoints use continuous coordinates (pixel i
        # covers [i, i + 1)), so conjugate by the half-pixel shift to keep both aligned.
        pixel_matrix = translate_scale_matrix(1., 1., -.5, -.5) @ matrix @ \
            translate_scale_matrix(1., 1., .5, .5)
        if matrix[2, 0] or matrix[2, 1]:
            img = cv2.warpPerspective(img, pixel_matrix, (out_w, out_h), borderValue=pad)
        else:
            img = cv2.warpAffine(img, pixel_matrix[:2], (out_w, out_h), borderValue=pad)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['input_size'] = (out_w, out_h)
        results['warp_mat'] = matrix
        if 'bbox' in results:
            arrays = instance_arrays(results, results_num_keypoints(results))
            warped = warp_instances(arrays, matrix, (0, 0, out_w, out_h))
            keep = box_candidates(arrays['bbox'] * zoom, warped['bbox'], self.min_box_size,
                                  self.min_area_ratio, self.max_aspect_ratio)
            results.update(filter_instances(warped, keep))
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(degrees={self.degrees}, translate={self.translate}, '
                f'scale={self.scale}, shear={self.shear}, perspective={self.perspective}, '
                f'border={self.border})')


@TRANSFORMS.register_module()
class KptRandomFlip(BaseTransform):
    """Mirror the image, boxes and keypoints, swapping left/right keypoints.

    The swap uses ``results['flip_indices']`` (from the dataset metainfo). Use two instances for
    YOLOv7's independent ``fliplr`` (0.5) and ``flipud`` (0.0). Sets ``flip`` and
    ``flip_direction``.

    Args:
        prob (float): probability of flipping.
        direction (str): ``'horizontal'`` or ``'vertical'``.
    """

    def __init__(self, prob: float = 0.5, direction: str = 'horizontal'):
        if direction not in ('horizontal', 'vertical'):
            raise ValueError(f"direction must be 'horizontal' or 'vertical', got {direction!r}")
        if not 0. <= prob <= 1.:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = prob
        self.direction = direction

    def transform(self, results: Dict) -> Dict:
        if np.random.rand() >= self.prob:
            results.setdefault('flip', False)
            return results
        img = results['img']
        img_h, img_w = img.shape[:2]
        # cv2.flip writes a contiguous copy ~50x faster than numpy's strided copy of img[:, ::-1]
        results['img'] = cv2.flip(img, 1 if self.direction == 'horizontal' else 0)
        if 'bbox' in results:
            results['bbox'] = flip_bboxes(results['bbox'], (img_w, img_h), self.direction)
        if results.get('keypoints') is not None:
            if results.get('flip_indices') is None:
                raise KeyError('KptRandomFlip needs results["flip_indices"] (the dataset '
                               'metainfo) to swap left/right keypoints')
            results['keypoints'], results['keypoints_visible'] = flip_keypoints(
                results['keypoints'], results['keypoints_visible'], (img_w, img_h),
                results['flip_indices'], self.direction)
        results['flip'] = True
        results['flip_direction'] = self.direction
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob}, direction={self.direction!r})'


@TRANSFORMS.register_module()
class KptLetterResize(BaseTransform):
    """Resize keeping the aspect ratio and pad to ``scale`` around the centre (YOLOv7 letterbox).

    Records the mapping back to the original image for both hosts: MMPose's ``input_size``,
    ``input_center`` and ``input_scale`` (so that ``x / input_size * input_scale +
    input_center - 0.5 * input_scale`` is the original coordinate), MMDetection's
    ``scale_factor`` ``(w_scale, h_scale)`` and ``pad_param`` ``(top, bottom, left, right)``.
    Boxes and keypoints, if present, are moved along.

    Args:
        scale (tuple[int, int]): output ``(w, h)``.
        pad_val (float | Sequence[float]): padding value.
        allow_scale_up (bool): enlarge images smaller than ``scale`` (YOLOv7 ``scaleup``).
        shrink_interpolation (str): how images are made smaller: ``'linear'`` (bilinear, as
            YOLOv7's training path) or ``'area'`` (pixel-area averaging, as YOLOv7's
            ``test.py`` loads images: no aliasing when a 1280-px frame becomes 256 px, so the
            evaluated image looks like the training images, which are decoded at reduced
            size). Enlarging is always bilinear.
    """

    _SHRINK = dict(linear=cv2.INTER_LINEAR, area=cv2.INTER_AREA)

    def __init__(self,
                 scale: Tuple[int, int] = (640, 640),
                 pad_val: Union[float, Sequence[float]] = 114.,
                 allow_scale_up: bool = True,
                 shrink_interpolation: str = 'linear'):
        if shrink_interpolation not in self._SHRINK:
            raise ValueError(f'shrink_interpolation must be one of {sorted(self._SHRINK)}, '
                             f'got {shrink_interpolation!r}')
        self.scale = tuple(int(s) for s in scale)
        self.pad_val = pad_val
        self.allow_scale_up = allow_scale_up
        self.shrink_interpolation = shrink_interpolation

    def transform(self, results: Dict) -> Dict:
        img = results['img']
        img_h, img_w = img.shape[:2]
        out_w, out_h = self.scale
        ratio = min(out_w / img_w, out_h / img_h)
        if not self.allow_scale_up:
            ratio = min(ratio, 1.)
        new_w, new_h = int(round(img_w * ratio)), int(round(img_h * ratio))
        if (new_w, new_h) != (img_w, img_h):
            shrink = ratio < 1
            interpolation = self._SHRINK[self.shrink_interpolation] if shrink else cv2.INTER_LINEAR
            img = cv2.resize(img, (new_w, new_h), interpolation=interpolation)
        dw, dh = (out_w - new_w) / 2, (out_h - new_h) / 2
        top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
        left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
        img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                 value=_pad_tuple(self.pad_val, img))
        sx, sy = new_w / img_w, new_h / img_h
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['scale_factor'] = (sx, sy)
        results['pad_param'] = np.array([top, bottom, left, right], dtype=np.float32)
        input_size = np.array([out_w, out_h], dtype=np.float32)
        input_scale = input_size / np.array([sx, sy], dtype=np.float32)
        results['input_size'] = (out_w, out_h)
        results['input_scale'] = input_scale
        results['input_center'] = 0.5 * input_scale - np.array([left / sx, top / sy], np.float32)
        if 'bbox' in results:
            arrays = instance_arrays(results, results_num_keypoints(results))
            matrix = translate_scale_matrix(sx, sy, left, top)
            results.update(warp_instances(arrays, matrix, (0, 0, out_w, out_h)))
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, pad_val={self.pad_val}, '
                f'allow_scale_up={self.allow_scale_up}, '
                f'shrink_interpolation={self.shrink_interpolation!r})')
