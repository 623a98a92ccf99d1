"""Scale-normalised L1 keypoint loss: an auxiliary term beside YOLO-Pose's OKS loss.

``1 - OKS`` saturates: with ``area * 4 sigma^2 = s`` its gradient ``2 d / s * exp(-d^2 / s)``
peaks at ``d = sqrt(s / 2)`` and is below 1 % of that peak for ``d > 2.3 sqrt(s)``, so keypoints
that start far from their target (every keypoint of a large animal starts at its cell) barely move
under SGD. This term, ``(|dx| + |dy|) / sqrt(area)`` per visible keypoint, has the same gradient
at every distance, so it pulls far keypoints in while the OKS term refines near ones (the role
YOLOX-Pose gives its ``loss_bbox_aux`` L1 term for boxes).
"""
from typing import Optional, Union

from mmengine.model import BaseModule
from torch import Tensor

from turtle_plugin.registry import MODELS
from .utils import reduce_keypoint_loss

__all__ = ['KptScaledL1Loss']


@MODELS.register_module()
class KptScaledL1Loss(BaseModule):
    """``(|dx| + |dy|) / sqrt(area)`` per visible keypoint, averaged over visible keypoints.

    Args:
        eps (float): lower bound of ``sqrt(area)``, in the units of the keypoints.
        reduction (str): ``'none'``, ``'sum'`` or ``'mean'`` (mean over visible keypoints).
        loss_weight (float): multiplies the reduced loss.
    """

    def __init__(self, eps: float = 1.0, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__()
        self.eps = eps
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self,
                pred: Tensor,
                target: Tensor,
                visible: Tensor,
                areas: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): predicted keypoints ``(..., K, 2)``.
            target (Tensor): target keypoints ``(..., K, 2)``, same units as ``pred``.
            visible (Tensor): ``(..., K)``; a keypoint counts where it is > 0.
            areas (Tensor): ground-truth box areas ``(...)`` in the squared units of ``pred``.
            weight (Tensor, optional): instance weights ``(...)``; zero drops an instance.
            avg_factor (float | Tensor, optional): divisor of the ``'mean'`` reduction;
                defaults to the number of visible keypoints of the kept instances.
            reduction_override (str, optional): replaces ``reduction`` for this call.

        Returns:
            Tensor: the weighted loss.
        """
        size = areas.clamp(min=0).sqrt().clamp(min=self.eps)  # (...)
        loss = (pred - target).abs().sum(-1) / size[..., None]  # (..., K)
        return self.loss_weight * reduce_keypoint_loss(
            loss, visible, weight, reduction_override or self.reduction, avg_factor)
