"""Box and keypoint geometry shared by every keypoint-aware transform.

All transforms of :mod:`turtle_plugin.datasets.transforms` move boxes and keypoints through these
few helpers (apply a matrix, flip with flip indices, clip and mark invisible, box from transformed
corners, drop degenerate instances) so the geometry is written once.

Conventions: coordinates are continuous pixel coordinates -- pixel ``i`` covers ``[i, i + 1)`` --
as in YOLO labels (``x_pixel = x_normalised * width``), so a horizontal flip maps ``x`` to
``width - x`` and a resize by ``r`` maps ``x`` to ``r * x``. Boxes are ``(N, 4)`` float32 xyxy,
keypoints ``(N, K, 2)`` float32, ``keypoints_visible`` ``(N, K)`` float32 in {0, 1}. A keypoint that
leaves the image keeps its coordinates but becomes not visible, so it is never a loss target.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = [
    'INSTANCE_KEYS', 'STALE_AFTER_MIX_KEYS', 'apply_matrix', 'transform_bboxes', 'flip_bboxes',
    'flip_keypoints', 'check_flip_indices', 'clip_bboxes', 'mark_outside_invisible',
    'box_candidates', 'num_instances', 'filter_instances', 'instance_arrays', 'concat_instances',
    'translate_scale_matrix', 'results_num_keypoints', 'warp_instances', 'scale_instances',
    'nonempty_boxes', 'fitted_size'
]

# Per-instance arrays of MMPose bottom-up results dicts; every transform that drops or
# concatenates instances treats these together.
INSTANCE_KEYS = ('bbox', 'bbox_score', 'category_id', 'keypoints', 'keypoints_visible', 'area')
# Annotation bookkeeping that no longer describes the instances once images are mixed.
STALE_AFTER_MIX_KEYS = ('id', 'raw_ann_info', 'num_keypoints', 'iscrowd', 'invalid_segs')


def translate_scale_matrix(scale_x: float, scale_y: float, offset_x: float,
                           offset_y: float) -> np.ndarray:
    """3x3 matrix of ``(x, y) -> (scale_x * x + offset_x, scale_y * y + offset_y)``."""
    return np.array([[scale_x, 0., offset_x], [0., scale_y, offset_y], [0., 0., 1.]])


def fitted_size(width: int, height: int, scale: Tuple[int, int]) -> Tuple[int, int]:
    """Size ``(w, h)`` of a ``width x height`` image resized to fit ``scale = (w, h)`` keeping its
    aspect ratio, as YOLOv7's ``load_image`` (sides truncated to integers, at least 1)."""
    ratio = min(scale[0] / width, scale[1] / height)
    return max(1, int(width * ratio)), max(1, int(height * ratio))


def apply_matrix(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map points through a 2x3 affine or a 3x3 projective matrix.

    Args:
        points (np.ndarray): ``(..., 2)`` coordinates.
        matrix (np.ndarray): ``(2, 3)`` or ``(3, 3)`` matrix acting on column vectors
            ``(x, y, 1)``; a 3x3 matrix is followed by the perspective division.

    Returns:
        np.ndarray: ``(..., 2)`` float32 mapped coordinates.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape not in ((2, 3), (3, 3)):
        raise ValueError(f'expected a 2x3 or 3x3 matrix, got shape {matrix.shape}')
    pts = np.asarray(points, dtype=np.float64)
    flat = pts.reshape(-1, 2)
    out = flat @ matrix[:2, :2].T + matrix[:2, 2]  # (M, 2)
    if matrix.shape[0] == 3 and _is_projective(matrix):
        out /= (flat @ matrix[2, :2] + matrix[2, 2])[:, None]
    return out.reshape(pts.shape).astype(np.float32)


def _is_projective(matrix: np.ndarray) -> bool:
    """Whether a 3x3 matrix has a last row other than ``(0, 0, 1)``."""
    return bool(matrix[2, 0] != 0 or matrix[2, 1] != 0 or matrix[2, 2] != 1)


def transform_bboxes(bboxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Box of the four transformed corners of each box.

    Args:
        bboxes (np.ndarray): ``(N, 4)`` xyxy boxes.
        matrix (np.ndarray): 2x3 or 3x3 matrix, see :func:`apply_matrix`.

    Returns:
        np.ndarray: ``(N, 4)`` float32 xyxy boxes enclosing the mapped corners.
    """
    bboxes = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
    corners = bboxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 4, 2)  # (N, 4 corners, xy)
    mapped = apply_matrix(corners, matrix)
    return np.concatenate([mapped.min(axis=1), mapped.max(axis=1)], axis=1)


def flip_bboxes(bboxes: np.ndarray, image_size: Tuple[int, int], direction: str) -> np.ndarray:
    """Mirror xyxy boxes in an image of ``image_size = (w, h)``.

    Args:
        bboxes (np.ndarray): ``(N, 4)`` xyxy boxes.
        image_size (tuple[int, int]): ``(w, h)``.
        direction (str): ``'horizontal'`` or ``'vertical'``.

    Returns:
        np.ndarray: ``(N, 4)`` float32 flipped boxes (still xyxy with x1 <= x2, y1 <= y2).
    """
    w, h = image_size
    out = np.asarray(bboxes, dtype=np.float32).copy()
    if direction == 'horizontal':
        out[:, [0, 2]] = w - out[:, [2, 0]]
    elif direction == 'vertical':
        out[:, [1, 3]] = h - out[:, [3, 1]]
    else:
        raise ValueError(f"flip direction must be 'horizontal' or 'vertical', got {direction!r}")
    return out


def check_flip_indices(flip_indices: Sequence[int], num_keypoints: int,
                       source: str = 'flip_indices') -> List[int]:
    """Validate that ``flip_indices`` is a left/right swap of ``num_keypoints`` keypoints.

    Args:
        flip_indices (Sequence[int]): the index of each keypoint's mirror partner.
        num_keypoints (int): K.
        source (str): where the indices come from, for the error message.

    Returns:
        list[int]: the indices as a list.

    Raises:
        ValueError: wrong length, an index out of range, or a swap that is not its own inverse
            (``flip_indices[flip_indices[i]] != i``).
    """
    flip_indices = [int(i) for i in flip_indices]
    if len(flip_indices) != num_keypoints:
        raise ValueError(f'{source} has {len(flip_indices)} entries but the dataset has '
                         f'{num_keypoints} keypoints')
    for i, j in enumerate(flip_indices):
        if not 0 <= j < num_keypoints:
            raise ValueError(f'{source}[{i}] = {j} is not a keypoint index '
                             f'(0..{num_keypoints - 1})')
        if flip_indices[j] != i:
            raise ValueError(f'{source} is not a swap: keypoint {i} flips to {j} but {j} flips to '
                             f'{flip_indices[j]}')
    return flip_indices


def flip_keypoints(keypoints: np.ndarray, keypoints_visible: np.ndarray,
                   image_size: Tuple[int, int], flip_indices: Sequence[int],
                   direction: str) -> Tuple[np.ndarray, np.ndarray]:
    """Mirror keypoints and swap left/right partners.

    Any mirror image swaps the animal's left and right, so the partners are swapped for both
    directions.

    Args:
        keypoints (np.ndarray): ``(N, K, 2)`` coordinates.
        keypoints_visible (np.ndarray): ``(N, K)`` visibility.
        image_size (tuple[int, int]): ``(w, h)``.
        flip_indices (Sequence[int]): K indices of each keypoint's mirror partner.
        direction (str): ``'horizontal'`` or ``'vertical'``.

    Returns:
        tuple[np.ndarray, np.ndarray]: flipped float32 keypoints and visibility.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    indices = check_flip_indices(flip_indices, keypoints.shape[1])
    kpts = keypoints[:, indices].copy()
    vis = np.asarray(keypoints_visible, dtype=np.float32)[:, indices].copy()
    w, h = image_size
    if direction == 'horizontal':
        kpts[..., 0] = w - kpts[..., 0]
    elif direction == 'vertical':
        kpts[..., 1] = h - kpts[..., 1]
    else:
        raise ValueError(f"flip direction must be 'horizontal' or 'vertical', got {direction!r}")
    return kpts, vis


def clip_bboxes(bboxes: np.ndarray, region: Sequence[float]) -> np.ndarray:
    """Clip xyxy boxes to ``region = (x1, y1, x2, y2)``.

    Args:
        bboxes (np.ndarray): ``(N, 4)`` xyxy boxes.
        region (Sequence[float]): the clipping rectangle.

    Returns:
        np.ndarray: ``(N, 4)`` float32 clipped boxes.
    """
    x1, y1, x2, y2 = region
    low = np.array([x1, y1, x1, y1], np.float32)
    high = np.array([x2, y2, x2, y2], np.float32)
    return np.clip(np.asarray(bboxes, dtype=np.float32), low, high)


def mark_outside_invisible(keypoints: np.ndarray, keypoints_visible: np.ndarray,
                           region: Sequence[float]) -> np.ndarray:
    """Visibility with every keypoint outside ``region = (x1, y1, x2, y2)`` set to 0.

    Coordinates are left untouched; the border itself counts as inside.

    Args:
        keypoints (np.ndarray): ``(N, K, 2)`` coordinates.
        keypoints_visible (np.ndarray): ``(N, K)`` visibility.
        region (Sequence[float]): the rectangle keypoints must lie in.

    Returns:
        np.ndarray: ``(N, K)`` float32 visibility.
    """
    x1, y1, x2, y2 = region
    x, y = keypoints[..., 0], keypoints[..., 1]
    inside = (x >= x1) & (x <= x2) & (y >= y1) & (y <= y2)
    return np.where(inside, keypoints_visible, 0).astype(np.float32)


def box_candidates(before: np.ndarray, after: np.ndarray, min_size: float = 2.,
                   min_area_ratio: float = 0.1, max_aspect_ratio: float = 20.,
                   eps: float = 1e-16) -> np.ndarray:
    """Boxes that survived a transform well enough to stay training targets.

    A box is kept when both sides exceed ``min_size`` pixels, it keeps more than
    ``min_area_ratio`` of its area (``before`` must already be scaled by the transform's zoom) and
    its aspect ratio stays below ``max_aspect_ratio`` (YOLOv5/YOLOv7's ``box_candidates``).

    Args:
        before (np.ndarray): ``(N, 4)`` xyxy boxes before the transform, zoom applied.
        after (np.ndarray): ``(N, 4)`` xyxy boxes after the transform and clipping.
        min_size (float): minimum width and height in pixels.
        min_area_ratio (float): minimum ``area(after) / area(before)``.
        max_aspect_ratio (float): maximum ``max(w / h, h / w)``.
        eps (float): guards the divisions.

    Returns:
        np.ndarray: ``(N,)`` bool mask of boxes to keep.
    """
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return ((w2 > min_size) & (h2 > min_size) & (w2 * h2 / (w1 * h1 + eps) > min_area_ratio)
            & (aspect < max_aspect_ratio))


def num_instances(results: Dict) -> int:
    """Number of instances in a results dict (0 when it has no boxes)."""
    bbox = results.get('bbox')
    return 0 if bbox is None else int(np.asarray(bbox).reshape(-1, 4).shape[0])


def filter_instances(results: Dict, keep: np.ndarray) -> Dict:
    """Keep only the instances selected by ``keep``, in every per-instance array.

    Args:
        results (dict): results dict with some of :data:`INSTANCE_KEYS`.
        keep (np.ndarray): ``(N,)`` bool mask or integer indices.

    Returns:
        dict: ``results``, updated in place.
    """
    n = num_instances(results)
    for key in INSTANCE_KEYS:
        value = results.get(key)
        if isinstance(value, np.ndarray) and value.ndim > 0 and value.shape[0] == n:
            results[key] = value[keep]
    return results


def instance_arrays(results: Dict, num_keypoints: int) -> Dict:
    """All :data:`INSTANCE_KEYS` of a results dict with canonical dtypes, defaults filled in.

    Missing scores default to 1, missing category ids to 1, missing keypoints to not-visible
    zeros and missing areas to the box areas.

    Args:
        results (dict): results dict; ``bbox`` may be absent (no instances).
        num_keypoints (int): K, to shape keypoint arrays.

    Returns:
        dict: ``bbox`` (N, 4) float32, ``bbox_score`` (N,) float32, ``category_id`` (N,) int64,
        ``keypoints`` (N, K, 2) float32, ``keypoints_visible`` (N, K) float32, ``area`` (N,)
        float32.
    """
    n = num_instances(results)
    k = num_keypoints

    def get(key: str, dtype: type, shape: Tuple[int, ...], default) -> np.ndarray:
        value = results[key] if key in results else default()  # defaults built only if needed
        return np.asarray(value, dtype).reshape(shape)

    bbox = get('bbox', np.float32, (n, 4), lambda: np.zeros((0, 4)))
    return dict(
        bbox=bbox,
        bbox_score=get('bbox_score', np.float32, (n, ), lambda: np.ones(n)),
        category_id=get('category_id', np.int64, (n, ), lambda: np.ones(n)),
        keypoints=get('keypoints', np.float32, (n, k, 2), lambda: np.zeros((n, k, 2))),
        keypoints_visible=get('keypoints_visible', np.float32, (n, k), lambda: np.zeros((n, k))),
        area=get('area', np.float32, (n, ),
                 lambda: (bbox[:, 2] - bbox[:, 0]) * (bbox[:, 3] - bbox[:, 1])))


def concat_instances(parts: List[Dict], num_keypoints: int) -> Dict:
    """Concatenate the per-instance arrays of several results dicts.

    Args:
        parts (list[dict]): results dicts (see :func:`instance_arrays`).
        num_keypoints (int): K.

    Returns:
        dict: the :data:`INSTANCE_KEYS` arrays of all parts, in order.
    """
    arrays = [instance_arrays(p, num_keypoints) for p in parts]
    arrays.append(instance_arrays({}, num_keypoints))  # keeps shapes when ``parts`` is empty
    return {key: np.concatenate([a[key] for a in arrays], axis=0) for key in INSTANCE_KEYS}


def results_num_keypoints(results: Dict) -> int:
    """K of a results dict: from ``keypoints`` if present, else from ``flip_indices``, else 0."""
    if results.get('keypoints') is not None:
        return int(np.asarray(results['keypoints']).shape[-2])
    if results.get('flip_indices') is not None:
        return len(results['flip_indices'])
    return 0


def _area_gain(bboxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Local area magnification of ``matrix`` at each box centre (exact for affine maps).

    For a projective map ``M`` the Jacobian determinant at ``p`` is
    ``det(M) / (m31 * x + m32 * y + m33) ** 3``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    affine_det = matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0]
    if matrix.shape == (2, 3) or not _is_projective(matrix):
        return np.full(len(bboxes), abs(affine_det), np.float32)
    centers = np.stack([(bboxes[:, 0] + bboxes[:, 2]) / 2, (bboxes[:, 1] + bboxes[:, 3]) / 2], 1)
    denom = centers @ matrix[2, :2] + matrix[2, 2]
    return np.abs(np.linalg.det(matrix) / denom**3).astype(np.float32)


def warp_instances(arrays: Dict, matrix: np.ndarray, region: Sequence[float]) -> Dict:
    """Move instances through ``matrix`` and keep them inside ``region``.

    Boxes become the box of their transformed corners clipped to ``region``; keypoints are mapped
    and those outside ``region`` become not visible; areas scale with the local area gain.

    Args:
        arrays (dict): the :data:`INSTANCE_KEYS` arrays (see :func:`instance_arrays`).
        matrix (np.ndarray): 2x3 or 3x3 matrix.
        region (Sequence[float]): ``(x1, y1, x2, y2)`` visible part of the output.

    Returns:
        dict: new arrays; instances are neither added nor removed.
    """
    out = dict(arrays)
    out['area'] = arrays['area'] * _area_gain(arrays['bbox'], matrix)
    out['bbox'] = clip_bboxes(transform_bboxes(arrays['bbox'], matrix), region)
    out['keypoints'] = apply_matrix(arrays['keypoints'], matrix)
    out['keypoints_visible'] = mark_outside_invisible(out['keypoints'],
                                                      arrays['keypoints_visible'], region)
    return out


def scale_instances(results: Dict, scale_x: float, scale_y: float) -> Dict:
    """Scale the boxes, keypoints and areas present in ``results`` as a resize of the image by
    ``(scale_x, scale_y)`` does; visibility is unchanged (a resize moves nothing off the image).

    The same as :func:`warp_instances` with a scale matrix and no region, without filling in
    absent keys -- loaders call it for every image.

    Args:
        results (dict): results dict with some of ``bbox``, ``keypoints``, ``area``.
        scale_x (float): horizontal factor.
        scale_y (float): vertical factor.

    Returns:
        dict: ``results``, updated in place with new float32 arrays.
    """
    if results.get('bbox') is not None:
        factors = np.array([scale_x, scale_y, scale_x, scale_y], np.float32)
        results['bbox'] = np.asarray(results['bbox'], np.float32).reshape(-1, 4) * factors
    if results.get('keypoints') is not None:
        results['keypoints'] = np.asarray(results['keypoints'], np.float32) * np.array(
            [scale_x, scale_y], np.float32)
    if results.get('area') is not None:
        results['area'] = np.asarray(results['area'], np.float32) * np.float32(scale_x * scale_y)
    return results


def nonempty_boxes(bboxes: np.ndarray, min_size: float = 0.) -> np.ndarray:
    """``(N,)`` bool mask of boxes whose width and height both exceed ``min_size``."""
    bboxes = np.asarray(bboxes).reshape(-1, 4)
    return ((bboxes[:, 2] - bboxes[:, 0]) > min_size) & ((bboxes[:, 3] - bboxes[:, 1]) > min_size)
