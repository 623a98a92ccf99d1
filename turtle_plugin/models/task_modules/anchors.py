"""Anchor fit and anchor estimation for YOLO heads (YOLOv5/YOLOv7 "autoanchor").

A ground-truth box of size ``(w, h)`` can be matched to an anchor ``(a_w, a_h)`` when both side
ratios ``w / a_w`` and ``h / a_h`` lie within ``[1 / thr, thr]`` (the assigners' ``anchor_t``,
4.0 in YOLOv7). Per box and anchor the *ratio metric* is the worse of the two sides,
``min(r, 1 / r)`` over ``r in (w / a_w, h / a_h)``, in ``(0, 1]``. The best possible recall
(BPR) is the fraction of boxes whose best anchor has a metric above ``1 / thr``.

New anchors come, as in YOLOv5/v7's ``kmean_anchors``, from k-means on the whitened box sizes,
then a mutation search that keeps a random multiplicative change of the anchors whenever it
raises the fitness ``mean_boxes(best metric if best metric > 1 / thr else 0)``.
"""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy.cluster.vq import kmeans
from torch import Tensor

__all__ = [
    'anchor_ratio_metric', 'check_anchor_fit', 'kmeans_anchors', 'anchors_to_levels',
    'gt_box_sizes'
]

ArrayLike = Union[np.ndarray, Tensor, Sequence]


def _as_wh(values: ArrayLike, name: str) -> np.ndarray:
    """``(..., 2)`` sizes (array, tensor or nested sequence) -> ``(N, 2)`` float64 array."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    wh = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    if (wh <= 0).any():
        raise ValueError(f'{name} must be positive (w, h) sizes in pixels; got a minimum of '
                         f'{wh.min():g}')
    return wh


def anchor_ratio_metric(wh: ArrayLike, anchors: ArrayLike) -> np.ndarray:
    """Ratio metric of every box against every anchor.

    Args:
        wh (array-like): ``(N, 2)`` box sizes ``(w, h)`` in pixels.
        anchors (array-like): ``(A, 2)`` (or ``(L, A, 2)``) anchor sizes in pixels.

    Returns:
        np.ndarray: ``(N, A)`` values in ``(0, 1]``; 1 when the box has the anchor's size.
    """
    wh, anchors = _as_wh(wh, 'wh'), _as_wh(anchors, 'anchors')
    ratio = wh[:, None] / anchors[None]  # (N, A, 2)
    return np.minimum(ratio, 1.0 / ratio).min(axis=2)


def check_anchor_fit(wh: ArrayLike, anchors: ArrayLike, thr: float = 4.0) -> Tuple[float, float]:
    """How well anchors fit the boxes (YOLOv5/v7's ``check_anchors`` metric).

    Args:
        wh (array-like): ``(N, 2)`` box sizes in pixels at the training image size, N > 0.
        anchors (array-like): ``(A, 2)`` or ``(L, A, 2)`` anchor sizes in pixels.
        thr (float): largest side ratio between a box and an anchor it may be matched to.

    Returns:
        tuple[float, float]: best possible recall (fraction of boxes with at least one
        anchor within ``thr``) and anchors above threshold (mean number of anchors within
        ``thr`` per box).
    """
    if thr <= 1:
        raise ValueError(f'thr is a side-ratio limit and must be > 1, got {thr}')
    metric = anchor_ratio_metric(wh, anchors)
    if len(metric) == 0:
        raise ValueError('check_anchor_fit needs at least one box, got none')
    matched = metric > 1.0 / thr
    return float(matched.any(axis=1).mean()), float(matched.sum(axis=1).mean())


def _fitness(wh: np.ndarray, anchors: np.ndarray, thr: float) -> float:
    """Mean best metric over boxes, counting 0 for boxes no anchor can match."""
    best = anchor_ratio_metric(wh, anchors).max(axis=1)
    return float((best * (best > 1.0 / thr)).mean())


def _kmeans_restarts(points: np.ndarray, n: int, restarts: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Lowest-distortion k-means codebook over ``restarts`` seeded starts at distinct points."""
    distinct = np.unique(points, axis=0)
    if len(distinct) < n:
        raise ValueError(f'k-means for {n} anchors needs at least {n} distinct box sizes, '
                         f'the data has {len(distinct)}')
    best, best_distortion = None, np.inf
    for _ in range(restarts):
        guess = distinct[rng.choice(len(distinct), n, replace=False)]
        codebook, distortion = kmeans(points, guess)
        # scipy drops clusters that end up empty; such a start is not usable
        if len(codebook) == n and distortion < best_distortion:
            best, best_distortion = codebook, distortion
    if best is None:
        raise ValueError(f'k-means did not find {n} non-empty clusters in {restarts} starts')
    return best


def kmeans_anchors(wh: ArrayLike,
                   n: int = 9,
                   img_size: Optional[int] = None,
                   thr: float = 4.0,
                   gen: int = 1000,
                   seed: int = 0,
                   min_size: float = 2.0,
                   restarts: int = 30) -> np.ndarray:
    """Estimate anchors from box sizes: k-means, then a mutation search (YOLOv5/v7).

    Args:
        wh (array-like): ``(N, 2)`` box sizes in pixels at the training image size (see
            :func:`gt_box_sizes`).
        n (int): number of anchors (levels x anchors per level).
        img_size (int, optional): training image side; when given, a box larger than it
            raises an error (sizes measured on the original images, not the network input).
        thr (float): anchor-matching side-ratio limit (``anchor_t``).
        gen (int): mutation generations.
        seed (int): seed of the k-means starts and of the mutations; same seed, same anchors.
        min_size (float): boxes with both sides below it are left out of the estimate, and
            no anchor side goes below it (YOLOv5/v7 use 2 pixels).
        restarts (int): k-means starts; the codebook with the lowest distortion is kept.

    Returns:
        np.ndarray: ``(n, 2)`` float anchors ``(w, h)`` in pixels, sorted by area, smallest
        first.
    """
    if n < 1 or gen < 0 or restarts < 1:
        raise ValueError(f'need n >= 1, gen >= 0 and restarts >= 1, got n={n}, gen={gen}, '
                         f'restarts={restarts}')
    wh_all = _as_wh(wh, 'wh')
    if img_size is not None and (wh_all > img_size).any():
        raise ValueError(f'a box of {wh_all.max():g} pixels is larger than img_size='
                         f'{img_size}: give box sizes at the training image size')
    wh_used = wh_all[(wh_all >= min_size).any(axis=1)]
    if len(wh_used) == 0:
        raise ValueError(f'no box has a side of at least min_size={min_size} pixels')
    points = wh_used
    # whiten: k-means distances in units of each side's spread (a constant side stays as is)
    std = points.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    rng = np.random.default_rng(seed)
    anchors = _kmeans_restarts(points / std, n, restarts, rng) * std

    fitness = _fitness(wh_used, anchors, thr)
    mutation_prob, sigma = 0.9, 0.1
    for _ in range(gen):
        factor = np.ones_like(anchors)
        while (factor == 1).all():  # mutate until something changes
            mutate = rng.random(anchors.shape) < mutation_prob
            factor = (mutate * rng.random() * rng.standard_normal(anchors.shape) * sigma +
                      1).clip(0.3, 3.0)
        candidate = (anchors * factor).clip(min=min_size)
        candidate_fitness = _fitness(wh_used, candidate, thr)
        if candidate_fitness > fitness:
            anchors, fitness = candidate, candidate_fitness
    return anchors[np.argsort(anchors.prod(axis=1))]


def anchors_to_levels(anchors: ArrayLike, num_levels: int = 3,
                      decimals: int = 0) -> List[List[Tuple[float, float]]]:
    """Sort anchors by area and group them per level, smallest on the finest level.

    Args:
        anchors (array-like): ``(L * A, 2)`` (or ``(L, A, 2)``) anchors in pixels.
        num_levels (int): number of levels ``L``.
        decimals (int): rounding; 0 gives integers, the form configs use.

    Returns:
        list[list[tuple]]: ``L`` lists of ``A`` ``(w, h)`` pairs, a value for a head's
        ``anchors`` argument.
    """
    flat = _as_wh(anchors, 'anchors')
    if len(flat) % num_levels:
        raise ValueError(f'{len(flat)} anchors do not split evenly into {num_levels} levels')
    flat = flat[np.argsort(flat.prod(axis=1), kind='stable')]
    rounded = [(int(round(w)), int(round(h))) if decimals == 0 else
               (round(float(w), decimals), round(float(h), decimals)) for w, h in flat]
    per_level = len(rounded) // num_levels
    return [rounded[i * per_level:(i + 1) * per_level] for i in range(num_levels)]


def gt_box_sizes(dataset, img_size: int) -> np.ndarray:
    """Ground-truth box sizes of a dataset, scaled as the letterbox resize scales them.

    Each image is resized so its long side is ``img_size`` (YOLO's letterbox), so a box's
    ``(w, h)`` is multiplied by ``img_size / max(width, height)`` of its image.

    Args:
        dataset: an MMEngine dataset whose ``get_data_info(i)`` has ``bbox`` ``(N, 4)`` xyxy
            pixels (MMPose bottom-up infos, e.g. ``YOLOKptDataset``) or MMDetection
            ``instances`` with a ``bbox`` each, and the image size as ``width``/``height``
            or ``ori_shape``/``img_shape`` ``(h, w)``.
        img_size (int): training image side (the letterbox's long side).

    Returns:
        np.ndarray: ``(M, 2)`` float32 box sizes of all images, in training pixels.
    """
    sizes = []
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        if 'bbox' in info:
            boxes = np.asarray(info['bbox'], dtype=np.float32).reshape(-1, 4)
        elif 'instances' in info:
            boxes = np.asarray([inst['bbox'] for inst in info['instances']],
                               dtype=np.float32).reshape(-1, 4)
        else:
            raise KeyError(f'data info {index} has neither `bbox` nor `instances`')
        if 'width' in info and 'height' in info:
            width, height = info['width'], info['height']
        else:
            shape = info.get('ori_shape', info.get('img_shape'))
            if shape is None:
                raise KeyError(f'data info {index} has no image size (`width`/`height` or '
                               f'`ori_shape`)')
            height, width = shape[:2]
        if max(width, height) <= 0:
            raise ValueError(f'data info {index} has an empty image ({width}x{height})')
        sizes.append((boxes[:, 2:] - boxes[:, :2]) * (img_size / max(width, height)))
    if not sizes:
        return np.zeros((0, 2), dtype=np.float32)
    wh = np.concatenate(sizes).astype(np.float32)
    return wh[(wh > 0).all(axis=1)]  # degenerate (clipped-away) boxes have no size
