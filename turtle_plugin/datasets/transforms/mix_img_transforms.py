"""Multi-image augmentations with keypoints: 4-image mosaic, 9-image mosaic and MixUp.

They follow YOLOv7's ``load_mosaic``, ``load_mosaic9`` and mixup (``utils/datasets.py``) and take
their extra images the way MMPose's ``Mosaic`` does: the dataset puts itself into the results
dict (``results['dataset']``, done by ``YOLOKptDataset.prepare_data`` and MMPose's
``BaseCocoStyleDataset.prepare_data``), the transform draws random indices, reads those data infos
and runs them through its own ``pre_transform`` (at least an image loader). No
``MultiImageMixDataset`` wrapper is needed, in either scope.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset, Compose

from turtle_plugin.registry import TRANSFORMS
from .kpt_geometry import (STALE_AFTER_MIX_KEYS, concat_instances, filter_instances,
                           fitted_size, instance_arrays, nonempty_boxes, results_num_keypoints,
                           translate_scale_matrix, warp_instances)

__all__ = ['KptMosaic', 'KptMosaic9', 'KptMixUp']


class _MixImageTransform(BaseTransform):
    """Draws ``num_aux_images`` extra samples from ``results['dataset']`` and mixes them in.

    Args:
        pre_transform (Sequence[dict], optional): transforms applied to each extra sample
            (e.g. ``[dict(type='LoadImage')]``).
        prob (float): probability of applying the transform.
    """
    num_aux_images = 1

    def __init__(self, pre_transform: Optional[Sequence[dict]] = None, prob: float = 1.0):
        if not 0. <= prob <= 1.:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = prob
        self.pre_transform = None if pre_transform is None else Compose(pre_transform)

    def transform(self, results: Dict) -> Dict:
        if np.random.rand() >= self.prob:
            return results
        dataset = results.get('dataset')
        if dataset is None:
            raise KeyError(f'{type(self).__name__} needs results["dataset"], which '
                           'YOLOKptDataset.prepare_data (and MMPose\'s BaseCocoStyleDataset) set; '
                           'wrap other datasets accordingly')
        others = [self._load_aux(dataset) for _ in range(self.num_aux_images)]
        results = self.mix(results, others)
        for key in STALE_AFTER_MIX_KEYS:
            results.pop(key, None)
        return results

    def _load_aux(self, dataset) -> Dict:
        index = np.random.randint(len(dataset))
        info = dataset.get_data_info(index)
        if not isinstance(dataset, BaseDataset):  # MMEngine datasets hand out fresh copies
            info = copy.deepcopy(info)
        info['dataset'] = dataset
        if self.pre_transform is not None:
            info = self.pre_transform(info)
        if info is None:
            raise RuntimeError(f'{type(self).__name__}: pre_transform dropped sample {index}')
        info.pop('dataset', None)
        if 'img' not in info:
            raise KeyError(f'{type(self).__name__}: sample {index} has no "img" after '
                           'pre_transform; add an image loader, e.g. dict(type="LoadImage")')
        return info

    def mix(self, results: Dict, others: List[Dict]) -> Dict:
        """Combine ``results`` with the extra samples ``others``."""
        raise NotImplementedError


def _resize_to_fit(img: np.ndarray, size: Tuple[int, int]) -> Tuple[np.ndarray, float, float]:
    """Resize so the image fits ``size = (w, h)`` keeping its aspect ratio (YOLOv7 load_image).

    Returns the image and the exact per-axis scales ``new_w / w`` and ``new_h / h``.
    """
    h0, w0 = img.shape[:2]
    new_w, new_h = fitted_size(w0, h0, size)
    if (new_w, new_h) != (w0, h0):
        img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return img, new_w / w0, new_h / h0


def _place(tile: Dict, num_keypoints: int, scale: Tuple[float, float],
           offset: Tuple[float, float], region: Sequence[float]) -> Dict:
    """Instances of ``tile`` scaled by ``scale``, shifted by ``offset`` and kept in ``region``."""
    matrix = translate_scale_matrix(scale[0], scale[1], offset[0], offset[1])
    placed = warp_instances(instance_arrays(tile, num_keypoints), matrix, region)
    return filter_instances(placed, nonempty_boxes(placed['bbox']))


def _finish(results: Dict, img: np.ndarray, parts: List[Dict], num_keypoints: int) -> Dict:
    results.update(concat_instances(parts, num_keypoints))
    results['img'] = img
    results['img_shape'] = img.shape[:2]
    return results


@TRANSFORMS.register_module()
class KptMosaic(_MixImageTransform):
    """Four images in a 2x2 mosaic of size ``2 * img_scale`` (YOLOv7 ``load_mosaic``).

    Each image is resized to fit ``img_scale``, then placed around a random centre: the current
    image top-left, the three drawn images top-right, bottom-left, bottom-right, cropped where
    they cross the canvas. Boxes are clipped to their tile, keypoints outside it become not
    visible, instances cut off entirely are dropped. Follow it with
    ``KptRandomAffine(border=(-w // 2, -h // 2))`` to get back to ``img_scale``.

    Args:
        img_scale (tuple[int, int]): ``(w, h)`` of one tile; the mosaic is twice as large.
        center_ratio_range (tuple[float, float]): the centre is drawn uniformly in
            ``range * img_scale`` (YOLOv7: ``(0.5, 1.5)``).
        pad_val (float): value of the canvas where no image lands.
        pre_transform (Sequence[dict], optional): transforms for the drawn images.
        prob (float): probability of applying the mosaic.
    """
    num_aux_images = 3

    def __init__(self,
                 img_scale: Tuple[int, int] = (640, 640),
                 center_ratio_range: Tuple[float, float] = (0.5, 1.5),
                 pad_val: float = 114.,
                 pre_transform: Optional[Sequence[dict]] = None,
                 prob: float = 1.0):
        super().__init__(pre_transform=pre_transform, prob=prob)
        self.img_scale = tuple(img_scale)
        self.center_ratio_range = tuple(center_ratio_range)
        self.pad_val = pad_val

    def mix(self, results: Dict, others: List[Dict]) -> Dict:
        w, h = self.img_scale
        num_keypoints = results_num_keypoints(results)
        img0 = results['img']
        canvas = np.full((2 * h, 2 * w) + img0.shape[2:], self.pad_val, dtype=img0.dtype)
        xc = int(np.random.uniform(*self.center_ratio_range) * w)
        yc = int(np.random.uniform(*self.center_ratio_range) * h)
        parts = []
        for loc, tile in enumerate([results] + others):
            img, sx, sy = _resize_to_fit(tile['img'], (w, h))
            paste, crop = self.tile_coords(loc, (xc, yc), img.shape[1], img.shape[0])
            canvas[paste[1]:paste[3], paste[0]:paste[2]] = img[crop[1]:crop[3], crop[0]:crop[2]]
            offset = (paste[0] - crop[0], paste[1] - crop[1])
            parts.append(_place(tile, num_keypoints, (sx, sy), offset, paste))
        return _finish(results, canvas, parts, num_keypoints)

    def tile_coords(self, loc: int, center: Tuple[int, int], tile_w: int,
                    tile_h: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        """Canvas rectangle and tile crop ``(x1, y1, x2, y2)`` of tile ``loc`` (0 = top-left,
        1 = top-right, 2 = bottom-left, 3 = bottom-right)."""
        xc, yc = center
        cw, ch = 2 * self.img_scale[0], 2 * self.img_scale[1]
        left, top = loc in (0, 2), loc in (0, 1)
        x1, x2 = (max(xc - tile_w, 0), xc) if left else (xc, min(xc + tile_w, cw))
        y1, y2 = (max(yc - tile_h, 0), yc) if top else (yc, min(yc + tile_h, ch))
        cx1 = tile_w - (x2 - x1) if left else 0
        cy1 = tile_h - (y2 - y1) if top else 0
        return (x1, y1, x2, y2), (cx1, cy1, cx1 + x2 - x1, cy1 + y2 - y1)


@TRANSFORMS.register_module()
class KptMosaic9(_MixImageTransform):
    """Nine images in a 3x3 mosaic, then a random ``2 * img_scale`` crop (YOLOv7 ``load_mosaic9``).

    The current image sits in the centre cell at ``img_scale``; the eight drawn images go
    clockwise around it starting above (top, top-right, right, bottom-right, bottom, bottom-left,
    left, top-left), each touching its neighbours as in YOLOv7. A window of ``2 * img_scale``
    whose origin is drawn uniformly in ``crop_ratio_range * img_scale`` is cut out. Boxes are
    clipped to the visible part of their tile, keypoints outside it become not visible.

    Args:
        img_scale (tuple[int, int]): ``(w, h)`` of one cell; the output is twice as large.
        crop_ratio_range (tuple[float, float]): range of the crop origin as a fraction of
            ``img_scale`` (YOLOv7: ``(0, 1)``).
        pad_val (float): value of the canvas where no image lands.
        pre_transform (Sequence[dict], optional): transforms for the drawn images.
        prob (float): probability of applying the mosaic.
    """
    num_aux_images = 8

    def __init__(self,
                 img_scale: Tuple[int, int] = (640, 640),
                 crop_ratio_range: Tuple[float, float] = (0., 1.),
                 pad_val: float = 114.,
                 pre_transform: Optional[Sequence[dict]] = None,
                 prob: float = 1.0):
        super().__init__(pre_transform=pre_transform, prob=prob)
        self.img_scale = tuple(img_scale)
        self.crop_ratio_range = tuple(crop_ratio_range)
        self.pad_val = pad_val

    def mix(self, results: Dict, others: List[Dict]) -> Dict:
        w, h = self.img_scale
        num_keypoints = results_num_keypoints(results)
        img0 = results['img']
        canvas = np.full((3 * h, 3 * w) + img0.shape[2:], self.pad_val, dtype=img0.dtype)
        resized = [_resize_to_fit(tile['img'], (w, h)) for tile in [results] + others]
        cells = self.cell_coords([img.shape[1::-1] for img, _, _ in resized])
        x0 = int(np.random.uniform(*self.crop_ratio_range) * w)
        y0 = int(np.random.uniform(*self.crop_ratio_range) * h)
        parts = []
        for tile, (img, sx, sy), (x1, y1, x2, y2) in zip([results] + others, resized, cells):
            vx1, vy1 = max(x1, 0), max(y1, 0)  # cells may start left of / above the canvas
            canvas[vy1:y2, vx1:x2] = img[vy1 - y1:, vx1 - x1:]
            region = (max(vx1 - x0, 0), max(vy1 - y0, 0), min(x2 - x0, 2 * w),
                      min(y2 - y0, 2 * h))
            parts.append(_place(tile, num_keypoints, (sx, sy), (x1 - x0, y1 - y0), region))
        return _finish(results, canvas[y0:y0 + 2 * h, x0:x0 + 2 * w].copy(), parts,
                       num_keypoints)

    def cell_coords(self, sizes: List[Tuple[int, int]]) -> List[Tuple[int, int, int, int]]:
        """Canvas rectangles ``(x1, y1, x2, y2)`` of the nine tiles of sizes ``(w, h)``."""
        sx, sy = self.img_scale
        (w0, h0), coords = sizes[0], []
        prev_w = prev_h = 0
        for i, (w, h) in enumerate(sizes):
            x1, y1 = {
                0: (sx, sy),  # centre
                1: (sx, sy - h),  # top
                2: (sx + prev_w, sy - h),  # top right
                3: (sx + w0, sy),  # right
                4: (sx + w0, sy + prev_h),  # bottom right
                5: (sx + w0 - w, sy + h0),  # bottom
                6: (sx + w0 - prev_w - w, sy + h0),  # bottom left
                7: (sx - w, sy + h0 - h),  # left
                8: (sx - w, sy + h0 - prev_h - h),  # top left
            }[i]
            coords.append((x1, y1, x1 + w, y1 + h))
            prev_w, prev_h = w, h
        return coords


@TRANSFORMS.register_module()
class KptMixUp(_MixImageTransform):
    """Blend with another augmented sample of the same size (YOLOv7 mixup).

    The other sample comes from ``pre_transform`` (typically the same loader, mosaic and
    affine as the current one), the blend ratio from ``Beta(alpha, beta)`` (YOLOv7: 8, 8), and
    the instances of both images are kept.

    Args:
        alpha (float): first Beta parameter.
        beta (float): second Beta parameter.
        pre_transform (Sequence[dict], optional): transforms producing the other sample.
        prob (float): probability of applying MixUp (YOLOv7 ``hyp['mixup']``).
    """

    def __init__(self,
                 alpha: float = 8.0,
                 beta: float = 8.0,
                 pre_transform: Optional[Sequence[dict]] = None,
                 prob: float = 0.15):
        super().__init__(pre_transform=pre_transform, prob=prob)
        self.alpha = alpha
        self.beta = beta

    def mix(self, results: Dict, others: List[Dict]) -> Dict:
        other = others[0]
        img, img2 = results['img'], other['img']
        if img.shape != img2.shape:
            raise ValueError(f'KptMixUp: the other sample is {img2.shape} but the current one is '
                             f'{img.shape}; its pre_transform must produce the same size')
        ratio = np.random.beta(self.alpha, self.beta)
        # one saturating pass in the images' dtype, no float copies (rounds where YOLOv7 truncates)
        mixed = cv2.addWeighted(img, ratio, img2, 1 - ratio, 0.)
        num_keypoints = results_num_keypoints(results)
        return _finish(results, mixed, [results, other], num_keypoints)
