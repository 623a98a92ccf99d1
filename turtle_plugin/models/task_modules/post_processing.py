"""Score filtering and class-aware NMS for YOLO predictions, carrying per-box extras (keypoints).

Uses ``torchvision.ops.batched_nms``, which runs on CPU and on every CUDA device torch supports
(mmcv's compiled NMS may not be built for the GPU at hand).
"""
from typing import Dict, Optional

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_iou

__all__ = ['filter_and_nms']


def filter_and_nms(bboxes: Tensor,
                   scores: Tensor,
                   score_thr: float,
                   iou_threshold: float,
                   max_per_img: int,
                   nms_pre: int = -1,
                   multi_label: bool = False,
                   extras: Optional[Dict[str, Tensor]] = None,
                   merge: bool = False) -> Dict[str, Tensor]:
    """Keep the confident boxes of one image and suppress overlaps within each class.

    Args:
        bboxes (Tensor): ``(N, 4)`` xyxy boxes.
        scores (Tensor): ``(N, C)`` per-class scores (YOLO: ``sigmoid(obj) * sigmoid(cls)``).
        score_thr (float): keep scores strictly above this.
        iou_threshold (float): NMS IoU threshold, applied per class.
        max_per_img (int): keep at most this many boxes, best first.
        nms_pre (int): before NMS keep only the this many best scores; ``-1`` keeps all.
        multi_label (bool): one candidate per (box, class) above ``score_thr`` (YOLOv7's
            ``multi_label=True``, a little more mAP) instead of one per box, its best class.
        extras (dict[str, Tensor], optional): tensors whose first dimension is ``N``
            (keypoints ``(N, K, 2)``, keypoint scores ``(N, K)``...). They are indexed exactly
            like the boxes, so they stay attached to their box.
        merge (bool): merge-NMS (YOLOv5's ``non_max_suppression(merge=True)``): each kept
            box, and each of its extras, becomes the score-weighted mean of the candidates of
            its class that overlap it by more than ``iou_threshold`` (itself included) -- the
            neighbouring anchors that all predicted the same animal, averaged as the flip test
            averages two passes. Scores and labels are the kept candidates'. Extras must be
            floating point.

    Returns:
        dict[str, Tensor]: ``bboxes`` ``(n, 4)``, ``scores`` ``(n,)``, ``labels`` ``(n,)`` and
        each extra, sorted by decreasing score.
    """
    extras = extras or {}
    for name, value in extras.items():
        if value.shape[0] != bboxes.shape[0]:
            raise ValueError(f'extra {name!r} has {value.shape[0]} rows for '
                             f'{bboxes.shape[0]} boxes')
    if multi_label:
        box_inds, labels = (scores > score_thr).nonzero(as_tuple=True)
        kept_scores = scores[box_inds, labels]
    else:
        best_scores, best_labels = scores.max(1)
        box_inds = (best_scores > score_thr).nonzero(as_tuple=True)[0]
        kept_scores, labels = best_scores[box_inds], best_labels[box_inds]
    if 0 < nms_pre < kept_scores.numel():
        kept_scores, top = kept_scores.topk(nms_pre)
        box_inds, labels = box_inds[top], labels[top]
    candidates = bboxes[box_inds].float()
    keep = batched_nms(candidates, kept_scores.float(), labels, iou_threshold)
    keep = keep[:max_per_img]  # batched_nms sorts by decreasing score
    results = dict(bboxes=bboxes[box_inds[keep]], scores=kept_scores[keep], labels=labels[keep])
    if not merge:
        results.update({name: value[box_inds[keep]] for name, value in extras.items()})
        return results
    # (kept, candidates): the candidate's score where it overlaps the kept box in its class
    weights = ((box_iou(candidates[keep], candidates) > iou_threshold)
               & (labels[keep, None] == labels[None])) * kept_scores.float()[None]
    # a kept box overlaps itself, so its row sums to at least its own score (> score_thr)
    norm = weights.sum(1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
    results['bboxes'] = (weights @ candidates / norm).to(bboxes.dtype)
    for name, value in extras.items():
        if not value.is_floating_point():
            raise ValueError(f'merge-NMS averages every extra; {name!r} is {value.dtype}')
        rows = value[box_inds]
        merged = weights @ rows.float().flatten(1) / norm
        results[name] = merged.view(len(keep), *rows.shape[1:]).to(value.dtype)
    return results
