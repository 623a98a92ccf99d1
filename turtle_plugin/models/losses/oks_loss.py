"""OKS keypoint loss of YOLO-Pose (Maji et al., "YOLO-Pose", CVPR-W 2022).

Per keypoint ``1 - exp(-d^2 / (area * (2 * sigma)^2 + eps))`` over the visible keypoints, with
``d`` the distance between prediction and target, ``area`` the ground-truth box area and
``sigma`` the keypoint's COCO-style falloff. This is the form of YOLO-Pose's ``ComputeLoss``:
COCO's OKS ``exp(-d^2 / (2 * s^2 * (2 * sigma)^2))`` uses the segment area ``s^2``, about half
the box area, so the two agree. The mean is taken over visible keypoints only (YOLO-Pose's
``kpt_loss_factor``); when none is visible the loss is zero, not NaN.
"""
from typing import Optional, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor

from turtle_plugin.registry import MODELS
from .utils import reduce_keypoint_loss

__all__ = ['YOLOPoseOKSLoss']


@MODELS.register_module()
class YOLOPoseOKSLoss(BaseModule):
    """``1 - OKS`` per visible keypoint, averaged over the visible keypoints.

    Args:
        eps (float): added to the OKS denominator (YOLO-Pose uses 1e-9).
        reduction (str): ``'none'``, ``'sum'`` or ``'mean'`` (mean over visible keypoints).
        loss_weight (float): multiplies the reduced loss.
    """

    def __init__(self, eps: float = 1e-9, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__()
        self.eps = eps
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self,
                pred: Tensor,
                target: Tensor,
                visible: Tensor,
                areas: Tensor,
                sigmas: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): predicted keypoints ``(..., K, 2)``.
            target (Tensor): target keypoints ``(..., K, 2)``, same units as ``pred``.
            visible (Tensor): ``(..., K)``; a keypoint counts where it is > 0.
            areas (Tensor): ground-truth box areas ``(...)`` in the squared units of ``pred``.
            sigmas (Tensor): per-keypoint sigmas ``(K,)``.
            weight (Tensor, optional): instance weights ``(...)``; zero drops an instance.
            avg_factor (float | Tensor, optional): divisor of the ``'mean'`` reduction;
                defaults to the number of visible keypoints of the kept instances.
            reduction_override (str, optional): replaces ``reduction`` for this call.

        Returns:
            Tensor: the weighted loss.
        """
        if sigmas.shape != pred.shape[-2:-1]:
            raise ValueError(f'{sigmas.numel()} keypoint sigmas for predictions with '
                             f'{pred.shape[-2]} keypoints')
        dist2 = ((pred - target)**2).sum(-1)  # (..., K)
        scale = areas[..., None] * (4 * sigmas**2) + self.eps
        loss = 1 - torch.exp(-dist2 / scale)
        return self.loss_weight * reduce_keypoint_loss(
            loss, visible, weight, reduction_override or self.reduction, avg_factor)
