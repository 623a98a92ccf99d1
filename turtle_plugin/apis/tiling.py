"""Tiled inference for images much larger than the training size.

Shrinking a 4000x3000 drone frame to a 256-pixel network input leaves a turtle a few pixels
wide. Instead the image is cut into overlapping windows of the training size, each window runs
at scale 1 (:func:`~turtle_plugin.apis.inference`), its predictions are shifted to the
window's place in the image, and class-wise NMS (``torchvision.ops.batched_nms``) merges the
duplicates that the overlaps produce; keypoints and every other per-instance field travel with
their box.

An animal cut by a window border is seen whole in a neighbouring window when the overlap is at
least its size; the partial box of the cut window is then usually suppressed by the whole one,
but not when their IoU stays below the NMS threshold.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement, InstanceData
from torchvision.ops import batched_nms

from .image_inference import inference, letterbox_size, load_image, post_processing_setting

__all__ = ['tile_starts', 'tile_windows', 'merge_tile_predictions', 'inference_tiled']


def tile_starts(length: int, tile: int, overlap: float) -> List[int]:
    """Start offsets of windows of ``tile`` pixels covering ``[0, length)`` along one axis.

    Consecutive windows are ``round(tile * (1 - overlap))`` apart; the last one ends at the
    image border (so it may overlap its neighbour more). A ``length <= tile`` gives ``[0]``.

    Args:
        length (int): image side.
        tile (int): window side.
        overlap (float): fraction of a window shared with the next one, in ``[0, 1)``.

    Returns:
        list[int]: increasing start offsets.
    """
    if not 0 <= overlap < 1:
        raise ValueError(f'overlap must be in [0, 1), got {overlap}')
    if length < 1 or tile < 1:
        raise ValueError(f'length and tile must be positive, got {length} and {tile}')
    if length <= tile:
        return [0]
    step = max(1, int(round(tile * (1 - overlap))))
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def tile_windows(width: int, height: int, tile_size: Tuple[int, int],
                 overlap: float = 0.2) -> np.ndarray:
    """Overlapping windows covering a ``width x height`` image, row by row.

    Args:
        width (int): image width.
        height (int): image height.
        tile_size (tuple[int, int]): window ``(w, h)``; a window is cut to the image when the
            image is smaller.
        overlap (float): see :func:`tile_starts`.

    Returns:
        np.ndarray: ``(n, 4)`` int64 windows ``(x0, y0, x1, y1)``, end exclusive.
    """
    tile_w, tile_h = tile_size
    xs = tile_starts(width, tile_w, overlap)
    ys = tile_starts(height, tile_h, overlap)
    return np.array([(x, y, min(x + tile_w, width), min(y + tile_h, height))
                     for y in ys for x in xs], dtype=np.int64).reshape(-1, 4)


def merge_tile_predictions(preds: Sequence[InstanceData], offsets: np.ndarray,
                           iou_threshold: float, max_per_img: int = -1) -> InstanceData:
    """Shift per-window predictions into image pixels and merge them with class-wise NMS.

    Args:
        preds (Sequence[InstanceData]): per window, ``bboxes`` ``(n, 4)``, ``scores`` ``(n,)``,
            ``labels`` ``(n,)`` and optionally ``keypoints`` ``(n, K, 2)`` and any other
            per-instance field, in window pixels (numpy arrays or tensors).
        offsets (np.ndarray): ``(len(preds), 2)`` top-left ``(x0, y0)`` of each window.
        iou_threshold (float): NMS IoU threshold.
        max_per_img (int): keep at most this many instances, best first; ``-1`` keeps all.

    Returns:
        InstanceData: the kept instances sorted by decreasing score, every field in the type
        (numpy or tensor) of the first window's.
    """
    if len(preds) != len(offsets):
        raise ValueError(f'{len(preds)} window predictions but {len(offsets)} offsets')
    if not preds:
        raise ValueError('merge_tile_predictions needs at least one window')
    as_numpy = isinstance(preds[0].bboxes, np.ndarray)
    keys = list(preds[0].keys())
    fields = {key: [] for key in keys}
    for pred, (x0, y0) in zip(preds, np.asarray(offsets, dtype=np.float64)):
        if sorted(pred.keys()) != sorted(keys):
            raise ValueError(f'windows predict different fields: {sorted(pred.keys())} vs '
                             f'{sorted(keys)}')
        for key in keys:
            value = torch.as_tensor(getattr(pred, key))
            if key == 'bboxes':
                value = value + value.new_tensor([x0, y0, x0, y0])
            elif key == 'keypoints':
                value = value + value.new_tensor([x0, y0])
            fields[key].append(value)
    merged = {key: torch.cat(values) for key, values in fields.items()}
    keep = batched_nms(merged['bboxes'].float(), merged['scores'].float(),
                       merged['labels'].long(), iou_threshold)
    if max_per_img >= 0:
        keep = keep[:max_per_img]
    kept = {key: value[keep] for key, value in merged.items()}
    if as_numpy:
        kept = {key: value.numpy() for key, value in kept.items()}
    return InstanceData(**kept)


def inference_tiled(model: nn.Module,
                    img,
                    tile_size: Optional[Tuple[int, int]] = None,
                    overlap: float = 0.2,
                    iou_threshold: Optional[float] = None,
                    max_per_img: Optional[int] = None,
                    batch_size: int = 1) -> BaseDataElement:
    """Run a model on overlapping windows of a large image and merge the predictions.

    Args:
        model (nn.Module): a model from :func:`~turtle_plugin.apis.init_model`.
        img (str | Path | np.ndarray): image path or BGR array.
        tile_size (tuple[int, int], optional): window ``(w, h)``; defaults to the test
            pipeline's letterbox size (the training size), so windows run at scale 1.
        overlap (float): fraction of a window shared with its neighbour, in ``[0, 1)``.
        iou_threshold (float, optional): NMS IoU threshold of the merge; defaults to the
            config's ``model.test_cfg.nms.iou_threshold`` (else 0.65).
        max_per_img (int, optional): instances kept; defaults to the config's
            ``model.test_cfg.max_per_img`` (else all).
        batch_size (int): windows per forward pass.

    Returns:
        DetDataSample | PoseDataSample: ``pred_instances`` in image pixels (as
        :func:`~turtle_plugin.apis.inference`); ``metainfo['tiles']`` lists the windows.
    """
    array, path = load_image(img)
    height, width = array.shape[:2]
    tile_size = tuple(tile_size) if tile_size is not None else letterbox_size(model.cfg)
    windows = tile_windows(width, height, tile_size, overlap)
    crops = [np.ascontiguousarray(array[y0:y1, x0:x1]) for x0, y0, x1, y1 in windows]
    # windows are letterboxed to tile_size itself: they run at scale 1 (or padded when the
    # image is smaller than a window)
    samples = inference(model, crops, img_scale=tile_size, batch_size=batch_size)
    if iou_threshold is None:
        iou_threshold = post_processing_setting(model, 'nms.iou_threshold', 0.65)
    if max_per_img is None:
        max_per_img = post_processing_setting(model, 'max_per_img', -1)
    merged = merge_tile_predictions([s.pred_instances for s in samples], windows[:, :2],
                                    iou_threshold, max_per_img)
    result = type(samples[0])(metainfo=dict(
        img_path=path, ori_shape=(height, width), img_shape=(height, width),
        tiles=windows.tolist()))
    result.pred_instances = merged
    return result
