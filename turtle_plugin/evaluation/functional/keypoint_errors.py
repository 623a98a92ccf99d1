"""Per-keypoint pixel error and PCK of predictions matched to ground-truth instances.

PCK follows MMPose's ``PCKAccuracy(norm_item='bbox')``: a keypoint is correct when its distance
to the ground truth is strictly below ``thr * max(w, h)`` of the ground-truth box. Only labelled
ground-truth keypoints (visibility > 0) count.
"""
from typing import Dict

import numpy as np

__all__ = ['keypoint_errors']


def keypoint_errors(pred_keypoints: np.ndarray, gt_keypoints: np.ndarray,
                    gt_visible: np.ndarray, gt_sizes: np.ndarray,
                    pck_thr: float = 0.05) -> Dict[str, np.ndarray]:
    """Mean pixel error and PCK of each keypoint over matched (prediction, GT) pairs.

    Args:
        pred_keypoints (np.ndarray): (M, K, 2) predicted keypoints, one row per matched pair.
        gt_keypoints (np.ndarray): (M, K, 2) ground-truth keypoints, same order.
        gt_visible (np.ndarray): (M, K) ground-truth visibility; > 0 means labelled.
        gt_sizes (np.ndarray): (M,) PCK normaliser of each pair, ``max(w, h)`` of the GT box.
        pck_thr (float): PCK threshold as a fraction of ``gt_sizes``.

    Returns:
        dict[str, np.ndarray]: ``count`` (K,) labelled keypoints, ``mean_error`` (K,) mean
        Euclidean distance in pixels and ``pck`` (K,) fraction within the threshold -- NaN for a
        keypoint never labelled -- plus scalars ``all_count``, ``all_mean_error`` and
        ``all_pck`` pooled over all labelled keypoints.
    """
    pred_keypoints = np.asarray(pred_keypoints, dtype=np.float64)
    gt_keypoints = np.asarray(gt_keypoints, dtype=np.float64)
    if pred_keypoints.shape != gt_keypoints.shape or pred_keypoints.ndim != 3 \
            or pred_keypoints.shape[-1] != 2:
        raise ValueError(f'pred_keypoints {pred_keypoints.shape} and gt_keypoints '
                         f'{gt_keypoints.shape} must both be (M, K, 2)')
    num_pairs, num_kpts = pred_keypoints.shape[:2]
    visible = np.asarray(gt_visible).reshape(num_pairs, num_kpts) > 0
    sizes = np.asarray(gt_sizes, dtype=np.float64).reshape(num_pairs, 1)
    dist = np.linalg.norm(pred_keypoints - gt_keypoints, axis=-1)  # (M, K)
    correct = (dist < pck_thr * sizes) & visible
    count = visible.sum(axis=0)
    err_sum = np.where(visible, dist, 0.).sum(axis=0)
    hit_sum = correct.sum(axis=0).astype(np.float64)
    nan = np.full(num_kpts, np.nan)
    all_count = int(count.sum())
    return dict(
        count=count,
        mean_error=np.divide(err_sum, count, out=nan.copy(), where=count > 0),
        pck=np.divide(hit_sum, count, out=nan.copy(), where=count > 0),
        all_count=all_count,
        all_mean_error=float(err_sum.sum() / all_count) if all_count else float('nan'),
        all_pck=float(hit_sum.sum() / all_count) if all_count else float('nan'))
