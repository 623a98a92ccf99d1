"""Precision, recall and F1 against the confidence threshold, and the best-F1 operating point.

The curve is exact (no interpolation): for every distinct detection score ``s`` it counts the
detections scored ``>= s`` -- a threshold between two tied scores cannot be set, so ties are
taken together. COCO's AP interpolates the precision envelope of the same counts at 101 recall
points; the P/R/F1 here are what a user gets by keeping the detections above the threshold.
"""
import json
import os
import os.path as osp
from typing import Dict, Optional

import numpy as np

__all__ = ['pr_f1_curve', 'save_pr_curve']


def pr_f1_curve(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> Dict:
    """Precision, recall and F1 at every distinct score, and the point of highest F1.

    Args:
        scores (np.ndarray): (D,) detection scores.
        is_tp (np.ndarray): (D,) bool, whether each detection is a true positive.
        num_gt (int): number of ground truths (true positives + false negatives).

    Returns:
        dict: ``threshold``, ``precision``, ``recall``, ``f1`` -- (T,) arrays, thresholds in
        decreasing order, one per distinct score -- ``num_gt``, ``num_pred`` and ``best``, a dict
        of ``threshold``, ``precision``, ``recall``, ``f1`` at the highest F1 (the highest
        threshold among equal F1s). Without detections the best point is P = R = F1 = 0 with a
        NaN threshold; without ground truths recall is 0.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    is_tp = np.asarray(is_tp, dtype=bool).reshape(-1)
    if scores.shape != is_tp.shape:
        raise ValueError(f'scores has {scores.size} entries but is_tp has {is_tp.size}')
    if num_gt < 0:
        raise ValueError(f'num_gt must be >= 0, got {num_gt}')
    order = np.argsort(-scores, kind='mergesort')
    sorted_scores = scores[order]
    tp_cum = np.cumsum(is_tp[order], dtype=np.float64)
    fp_cum = np.cumsum(~is_tp[order], dtype=np.float64)
    # last detection of each group of equal scores: a threshold keeps a whole group or none
    last = np.r_[np.nonzero(np.diff(sorted_scores))[0], len(sorted_scores) - 1].astype(int)
    last = last[last >= 0]
    tp, fp = tp_cum[last], fp_cum[last]
    precision = tp / (tp + fp)  # tp + fp >= 1: every group holds a detection
    recall = tp / num_gt if num_gt > 0 else np.zeros_like(tp)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    if len(last):
        i = int(np.argmax(f1))
        best = dict(threshold=float(sorted_scores[last[i]]), precision=float(precision[i]),
                    recall=float(recall[i]), f1=float(f1[i]))
    else:
        best = dict(threshold=float('nan'), precision=0.0, recall=0.0, f1=0.0)
    return dict(threshold=sorted_scores[last], precision=precision, recall=recall, f1=f1,
                num_gt=int(num_gt), num_pred=int(scores.size), best=best)


def save_pr_curve(curve: Dict, path_prefix: str, title: str,
                  max_points: Optional[int] = 2000) -> Dict[str, str]:
    """Write a curve of :func:`pr_f1_curve` as ``<path_prefix>.json`` and ``<path_prefix>.png``.

    The PNG holds two panels: precision against recall, and P, R, F1 against the confidence
    threshold, the best-F1 point marked on both. It is drawn on a matplotlib ``Figure`` with the
    Agg canvas, so no global backend is switched.

    Args:
        curve (dict): output of :func:`pr_f1_curve`.
        path_prefix (str): path without extension; its folder is created.
        title (str): figure title and the JSON's ``title``.
        max_points (int, optional): keep at most this many curve points (evenly spaced, the
            best point always kept) in the JSON and the plot; None keeps all.

    Returns:
        dict[str, str]: ``json`` and ``png`` paths.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder = osp.dirname(path_prefix)
    if folder:
        os.makedirs(folder, exist_ok=True)
    n = len(curve['threshold'])
    keep = np.arange(n)
    if max_points is not None and n > max_points:
        best_idx = np.nonzero(curve['threshold'] == curve['best']['threshold'])[0]
        keep = np.unique(np.r_[np.linspace(0, n - 1, max_points).round().astype(int), best_idx])
    points = {k: curve[k][keep].tolist() for k in ('threshold', 'precision', 'recall', 'f1')}
    record = dict(title=title, num_gt=curve['num_gt'], num_pred=curve['num_pred'],
                  best=curve['best'], curve=points)
    paths = dict(json=f'{path_prefix}.json', png=f'{path_prefix}.png')
    with open(paths['json'], 'w') as f:
        # NaN (no detections) is written as null to keep the file strict JSON
        json.dump(_nan_to_none(record), f, indent=1)

    fig = Figure(figsize=(10, 4.2))
    FigureCanvasAgg(fig)
    ax_pr, ax_thr = fig.subplots(1, 2)
    best = curve['best']
    ax_pr.plot(points['recall'], points['precision'], color='tab:blue')
    ax_pr.set(xlabel='recall', ylabel='precision', xlim=(0, 1.01), ylim=(0, 1.01),
              title='precision-recall')
    ax_thr.plot(points['threshold'], points['precision'], label='precision')
    ax_thr.plot(points['threshold'], points['recall'], label='recall')
    ax_thr.plot(points['threshold'], points['f1'], label='F1')
    ax_thr.set(xlabel='confidence threshold', xlim=(0, 1.01), ylim=(0, 1.01),
               title='P / R / F1 vs confidence')
    if np.isfinite(best['threshold']):
        ax_pr.plot([best['recall']], [best['precision']], 'o', color='tab:red',
                   label=f"best F1 {best['f1']:.3f} @ {best['threshold']:.3f}")
        ax_thr.axvline(best['threshold'], color='tab:red', linestyle='--', linewidth=1)
        ax_pr.legend(loc='lower left')
    ax_thr.legend(loc='lower left')
    for ax in (ax_pr, ax_thr):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}  (GT {curve['num_gt']}, predictions {curve['num_pred']})")
    fig.tight_layout()
    fig.savefig(paths['png'], dpi=100)
    return paths


def _nan_to_none(obj):
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj
