"""YOLOv7's SimOTA assigner (``ComputeLossOTA.build_targets``; Ge et al., "OTA", CVPR 2021).

The candidates are YOLOv5's (:class:`YOLOv5Assigner`). Among the candidates of an image, every
ground truth takes its ``k`` cheapest under ``cost = BCE(sqrt(cls * obj), onehot(label)) +
3 * -log(IoU)``, with ``k = max(1, floor(sum of its 10 largest IoUs))``; a candidate taken by
several ground truths goes to the one it costs least. As in YOLOv7, the pool of an image is the
candidates of *all* its ground truths, listed once per ground truth that generated them.

With ``oks_weight > 0`` the cost also holds ``oks_weight * -log(OKS)`` of the keypoints
predicted at a candidate, and with ``dynamic_k_indicator='oks'`` the largest OKS instead of the
largest IoU sum up to ``k``, as MMPose's ``SimOTAAssigner`` does for YOLOX-Pose and
RTMO; the OKS is COCO's, ``exp(-d^2 / (2 * area * (2 sigma)^2))`` averaged over the
labelled keypoints, with the ground-truth box area. For a ground truth without a labelled
keypoint the box IoU stands in for the OKS.

The whole batch is handled at once: the pool of image ``b`` is the ``M = G * N`` padded
candidate columns of that image, with invalid columns and padded ground truths at infinite cost.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from turtle_plugin.registry import TASK_UTILS
from .yolov5_assigner import YOLOv5Assigner

__all__ = ['YOLOv7OTAAssigner', 'batched_box_iou', 'batched_keypoint_oks']


def batched_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-9) -> Tensor:
    """Pairwise IoU of two batches of xyxy boxes.

    Args:
        boxes1 (Tensor): ``(B, G, 4)``.
        boxes2 (Tensor): ``(B, M, 4)``.
        eps (float): lower bound of the union.

    Returns:
        Tensor: ``(B, G, M)``.
    """
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    lt = torch.max(boxes1[:, :, None, :2], boxes2[:, None, :, :2])
    rb = torch.min(boxes1[:, :, None, 2:], boxes2[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area1[:, :, None] + area2[:, None, :] - inter
    return inter / union.clamp(min=eps)


def batched_keypoint_oks(gt_kpts: Tensor, gt_kpts_visible: Tensor, gt_areas: Tensor,
                         pred_kpts: Tensor, sigmas: Tensor, eps: float = 1e-9) -> Tensor:
    """Pairwise COCO OKS between ground-truth and predicted keypoints.

    ``OKS = sum_k v_k exp(-d_k^2 / (2 * area * (2 sigma_k)^2)) / sum_k v_k`` with ``v_k`` the
    ground truth's labelled keypoints; 0 for a ground truth without a labelled keypoint.

    Args:
        gt_kpts (Tensor): ``(B, G, K, 2)``.
        gt_kpts_visible (Tensor): ``(B, G, K)``; a keypoint counts where it is > 0.
        gt_areas (Tensor): ``(B, G)`` areas, in the squared units of the keypoints.
        pred_kpts (Tensor): ``(B, M, K, 2)``.
        sigmas (Tensor): ``(K,)``.
        eps (float): lower bound of the scale.

    Returns:
        Tensor: ``(B, G, M)``.
    """
    dist2 = ((gt_kpts[:, :, None] - pred_kpts[:, None])**2).sum(-1)  # (B, G, M, K)
    scale = (2 * gt_areas[:, :, None, None] * (2 * sigmas)**2).clamp(min=eps)
    visible = (gt_kpts_visible > 0).to(dist2.dtype)[:, :, None]  # (B, G, 1, K)
    num_visible = visible.sum(-1)
    return (torch.exp(-dist2 / scale) * visible).sum(-1) / num_visible.clamp(min=1)


@TASK_UTILS.register_module()
class YOLOv7OTAAssigner(YOLOv5Assigner):
    """SimOTA dynamic-k matching over YOLOv5's candidates, vectorised over the batch.

    Args:
        anchor_t (float): see :class:`YOLOv5Assigner`.
        neighbour_offset (float): see :class:`YOLOv5Assigner`.
        topk (int): how many of the largest IoUs sum up to a ground truth's ``k``.
        iou_weight (float): weight of the ``-log(IoU)`` cost.
        cls_weight (float): weight of the classification cost.
        oks_weight (float): weight of the ``-log(OKS)`` cost of the predicted keypoints; 0
            (YOLOv7) leaves keypoints out of the assignment. Only for a head with keypoints.
        dynamic_k_indicator (str): what the ``topk`` largest values summed up to ``k`` are:
            ``'iou'`` (YOLOv7) or ``'oks'`` (YOLOX-Pose's setting; needs keypoints too).
        eps (float): clamps probabilities away from 0 and 1 in the classification cost.
    """

    def __init__(self,
                 anchor_t: float = 4.0,
                 neighbour_offset: float = 0.5,
                 topk: int = 10,
                 iou_weight: float = 3.0,
                 cls_weight: float = 1.0,
                 oks_weight: float = 0.0,
                 dynamic_k_indicator: str = 'iou',
                 eps: float = 1e-7):
        super().__init__(anchor_t=anchor_t, neighbour_offset=neighbour_offset)
        if topk < 1:
            raise ValueError(f'topk must be >= 1, got {topk}')
        if oks_weight < 0:
            raise ValueError(f'oks_weight must be >= 0, got {oks_weight}')
        if dynamic_k_indicator not in ('iou', 'oks'):
            raise ValueError(f"dynamic_k_indicator must be 'iou' or 'oks', got "
                             f'{dynamic_k_indicator!r}')
        self.topk = topk
        self.iou_weight = iou_weight
        self.cls_weight = cls_weight
        self.oks_weight = oks_weight
        self.dynamic_k_indicator = dynamic_k_indicator
        self.eps = eps

    @property
    def uses_keypoints(self) -> bool:
        """Whether :meth:`assign` needs the keypoints (the head passes them when True)."""
        return self.oks_weight > 0 or self.dynamic_k_indicator == 'oks'

    @torch.no_grad()
    def assign(self,
               pred_bboxes: Tensor,
               pred_scores: Tensor,
               cand_valid: Tensor,
               gt_bboxes: Tensor,
               gt_labels: Tensor,
               gt_valid: Tensor,
               pred_kpts: Optional[Tensor] = None,
               gt_kpts: Optional[Tensor] = None,
               gt_kpts_visible: Optional[Tensor] = None,
               kpt_sigmas: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Choose the positives among the candidates.

        Args:
            pred_bboxes (Tensor): ``(B, G, N, 4)`` decoded xyxy boxes predicted at the ``N``
                candidates generated by each ground truth.
            pred_scores (Tensor): ``(B, G, N, C)`` ``sqrt(sigmoid(cls) * sigmoid(obj))`` at the
                candidates.
            cand_valid (Tensor): ``(B, G, N)`` bool.
            gt_bboxes (Tensor): ``(B, G, 4)`` xyxy boxes.
            gt_labels (Tensor): ``(B, G)`` labels in ``[0, C)``.
            gt_valid (Tensor): ``(B, G)`` bool.
            pred_kpts (Tensor, optional): ``(B, G, N, K, 2)`` keypoints predicted at the
                candidates; with ``gt_kpts``, ``gt_kpts_visible`` (``(B, G, K, 2)``,
                ``(B, G, K)``) and ``kpt_sigmas`` (``(K,)``) required when
                :attr:`uses_keypoints`.

        Returns:
            tuple[Tensor, Tensor]: ``pos`` ``(B, G, N)`` bool and ``gt_inds`` ``(B, G, N)``
            long: the ground truth each positive candidate regresses to, which need not be the
            one that generated it.
        """
        batch_size, num_gts, num_cands = cand_valid.shape
        if num_gts == 0 or num_cands == 0:
            return super().assign(pred_bboxes, pred_scores, cand_valid, gt_bboxes, gt_labels,
                                  gt_valid)
        num_cols = num_gts * num_cands
        dtype = torch.promote_types(pred_bboxes.dtype, torch.float32)
        boxes = pred_bboxes.reshape(batch_size, num_cols, 4).to(dtype)
        scores = pred_scores.reshape(batch_size, num_cols, -1).to(dtype)
        valid = cand_valid.reshape(batch_size, 1, num_cols)
        pair_valid = valid & gt_valid[:, :, None]  # (B, G, M)

        ious = batched_box_iou(gt_bboxes.to(dtype), boxes).masked_fill(~pair_valid, 0)
        oks = None
        if self.uses_keypoints:
            if any(t is None for t in (pred_kpts, gt_kpts, gt_kpts_visible, kpt_sigmas)):
                raise ValueError('YOLOv7OTAAssigner with an OKS cost or an OKS dynamic k needs '
                                 'pred_kpts, gt_kpts, gt_kpts_visible and kpt_sigmas: use it in '
                                 'a head that predicts keypoints')
            gt_boxes = gt_bboxes.to(dtype)
            areas = (gt_boxes[..., 2] - gt_boxes[..., 0]) * (gt_boxes[..., 3] - gt_boxes[..., 1])
            oks = batched_keypoint_oks(
                gt_kpts.to(dtype), gt_kpts_visible, areas,
                pred_kpts.reshape(batch_size, num_cols, *pred_kpts.shape[-2:]).to(dtype),
                kpt_sigmas.to(dtype))
            labelled = (gt_kpts_visible > 0).any(-1)[..., None]  # (B, G, 1)
            oks = torch.where(labelled, oks, ious).masked_fill(~pair_valid, 0)
        topk = min(self.topk, num_cols)
        indicator = oks if self.dynamic_k_indicator == 'oks' else ious
        dynamic_ks = indicator.topk(topk, dim=-1).values.sum(-1).int().clamp(min=1)  # (B, G)

        # BCE(logit(y), onehot(label)) summed over classes = sum_c -log(1 - y_c) - logit(y_label)
        probs = scores.clamp(self.eps, 1 - self.eps)
        neg_cost = -torch.log1p(-probs).sum(-1)  # (B, M)
        logits = (torch.log(probs) - torch.log1p(-probs)).transpose(1, 2)  # (B, C, M)
        label_logits = logits.gather(1, gt_labels.long()[:, :, None].expand(-1, -1, num_cols))
        cls_cost = neg_cost[:, None, :] - label_logits  # (B, G, M)
        cost = self.cls_weight * cls_cost - self.iou_weight * torch.log(ious + 1e-8)
        if self.oks_weight > 0:
            cost = cost - self.oks_weight * torch.log(oks + 1e-8)
        cost = cost.masked_fill(~pair_valid, float('inf'))

        # each ground truth takes its dynamic_k cheapest columns
        _, cheapest = cost.topk(topk, dim=-1, largest=False)  # (B, G, topk)
        within_k = torch.arange(topk, device=cost.device) < dynamic_ks[..., None]
        matching = torch.zeros_like(pair_valid).scatter(-1, cheapest, within_k) & pair_valid

        # a column taken by several ground truths goes to the cheapest ground truth
        shared = matching.sum(1) > 1  # (B, M)
        cheapest_gt = cost.argmin(1)  # (B, M)
        gt_range = torch.arange(num_gts, device=cost.device)[None, :, None]
        matching = torch.where(shared[:, None], gt_range == cheapest_gt[:, None], matching)

        pos = matching.any(1).reshape(batch_size, num_gts, num_cands)
        gt_inds = matching.to(torch.uint8).argmax(1).reshape(batch_size, num_gts, num_cands)
        return pos, gt_inds
