"""Image loading for training: decode straight at the size the mosaic needs, optionally cached.

YOLOv7's ``load_image`` decodes every image at full resolution and then shrinks it to fit the
training size; on 1280x720 frames trained at 640 or 256 most of the decoded pixels are thrown
away, and decoding is the most expensive step of the whole pipeline. ``KptLoadImage`` lets
libjpeg decode at 1/2, 1/4 or 1/8 of the size (DCT scaling) whenever that is still at least the
fitted size, finishes with the same bilinear resize, moves boxes and keypoints by the exact
scale, and keeps the result in the dataset's :class:`~turtle_plugin.datasets.DecodedImageCache`
when there is one.
"""
import math
from typing import Dict, Optional, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio

from turtle_plugin.registry import TRANSFORMS
from .kpt_geometry import fitted_size, scale_instances

__all__ = ['KptLoadImage']

# libjpeg's DCT scaling factors OpenCV exposes, largest first
_REDUCED_FLAGS = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  2: cv2.IMREAD_REDUCED_COLOR_2}
_JPEG_MAGIC = b'\xff\xd8'


def _decode(img_bytes: bytes, flag: int) -> Optional[np.ndarray]:
    return cv2.imdecode(np.frombuffer(img_bytes, np.uint8), flag)


def reduction_factor(width: int, height: int, scale: Tuple[int, int]) -> int:
    """Largest libjpeg reduction (1, 2, 4 or 8) that keeps a ``width x height`` image at least
    as large as its fit into ``scale = (w, h)``, so the final resize never enlarges it."""
    ratio = min(scale[0] / width, scale[1] / height)
    return next((d for d in _REDUCED_FLAGS if d * ratio <= 1.), 1)


@TRANSFORMS.register_module()
class KptLoadImage(BaseTransform):
    """Load a BGR uint8 image, resized to fit ``fit_scale``, with its instances moved along.

    With ``fit_scale=None`` it loads like MMPose's ``LoadImage`` (full size). With a
    ``fit_scale`` the image is resized to fit it keeping its aspect ratio (YOLOv7
    ``load_image``, bilinear); use the mosaic's ``img_scale``, the mosaic then has nothing left
    to resize. ``bbox``, ``keypoints`` and ``area`` are scaled by exactly the factors the
    image was (no clipping: a pure scale moves nothing across the border).

    With ``reduced_decode`` JPEGs are decoded at 1/2, 1/4 or 1/8 of their size when that is
    still at least the fitted size: pixel ``i`` of such a decode covers source pixels
    ``[d * i, d * (i + 1))``, so coordinates scale by exactly ``1 / d``; pixels are averaged over
    the block instead of bilinearly sampled (less aliasing than the full-size path, not
    bit-identical). The data info's ``width`` and ``height`` pick the factor; without them, and
    for other formats, the image is decoded at full size.

    When ``results['dataset']`` has an ``image_cache`` (``YOLOKptDataset(image_cache_mb=...)``),
    the loaded image is stored there read-only and reused for every later request with the same
    path and arguments. Meant for training pipelines: ``ori_shape`` is the file's size but no
    mapping back to it is recorded, so evaluation pipelines keep ``LoadImage`` +
    ``KptLetterResize``.

    Args:
        fit_scale (tuple[int, int], optional): ``(w, h)`` the image is resized to fit.
        reduced_decode (bool): let libjpeg decode at a reduced size (only with ``fit_scale``).
        backend_args (dict, optional): MMEngine file backend arguments.
    """

    def __init__(self,
                 fit_scale: Optional[Tuple[int, int]] = None,
                 reduced_decode: bool = True,
                 backend_args: Optional[dict] = None):
        if fit_scale is not None:
            fit_scale = tuple(int(s) for s in fit_scale)
            if len(fit_scale) != 2 or min(fit_scale) < 1:
                raise ValueError(f'fit_scale must be (w, h) with positive sides, got {fit_scale}')
        self.fit_scale = fit_scale
        self.reduced_decode = reduced_decode
        self.backend_args = backend_args

    def transform(self, results: Dict) -> Dict:
        if 'img' in results:  # already decoded (e.g. a test fixture): only fit it
            img, scale = self._fit(results['img'], 1)
            ori_shape = results['img'].shape[:2]
        else:
            cache = getattr(results.get('dataset'), 'image_cache', None)
            key = (results['img_path'], self.fit_scale, self.reduced_decode)
            entry = None if cache is None else cache.get(key)
            if entry is None:
                img, (scale, ori_shape) = self._load(results)
                if cache is not None:
                    cache.put(key, img, (scale, ori_shape))
            else:
                img, (scale, ori_shape) = entry
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = tuple(ori_shape)
        if scale != (1., 1.):
            scale_instances(results, *scale)
        return results

    def _load(self, results: Dict) -> Tuple[np.ndarray, Tuple]:
        """Decode (reduced when possible) and fit; returns the image, its scale and the file's
        ``(h, w)``."""
        path = results['img_path']
        img_bytes = fileio.get(path, backend_args=self.backend_args)
        width, height = results.get('width'), results.get('height')
        factor = 1
        if (self.fit_scale is not None and self.reduced_decode and width and height
                and img_bytes[:2] == _JPEG_MAGIC):
            factor = reduction_factor(width, height, self.fit_scale)
        img = None
        if factor > 1:
            img = _decode(img_bytes, _REDUCED_FLAGS[factor])
            expected = (math.ceil(height / factor), math.ceil(width / factor))
            if img is not None and img.shape[:2] != expected:  # size in the info is stale
                img = None
        if img is None:
            factor = 1
            img = _decode(img_bytes, cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f'KptLoadImage: cannot decode {path} as an image')
            height, width = img.shape[:2]
        img, scale = self._fit(img, factor, (width, height))
        return img, (scale, (height, width))

    def _fit(self, img: np.ndarray, factor: int,
             full_size: Optional[Tuple[int, int]] = None) -> Tuple[np.ndarray, Tuple[float, float]]:
        """Resize ``img`` (decoded at ``1 / factor`` of ``full_size``) to fit ``fit_scale``.

        Returns the image and the scale from full-size coordinates to its coordinates.
        """
        dec_h, dec_w = img.shape[:2]
        if self.fit_scale is None:
            return img, (1. / factor, 1. / factor)
        full_w, full_h = full_size or (dec_w, dec_h)
        new_w, new_h = fitted_size(full_w, full_h, self.fit_scale)
        if (new_w, new_h) != (dec_w, dec_h):
            img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        # the decode covers [0, factor * dec) of the source, the resize maps dec to new
        return img, (new_w / (factor * dec_w), new_h / (factor * dec_h))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(fit_scale={self.fit_scale}, '
                f'reduced_decode={self.reduced_decode}, backend_args={self.backend_args})')
