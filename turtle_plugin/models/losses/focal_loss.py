"""Binary cross-entropy and focal loss on logits, as YOLOv5/YOLOv7 use them.

Named ``YOLO...`` because MMDetection's ``FocalLoss``/``CrossEntropyLoss`` and MMPose's
``BCELoss`` already occupy the plain names in the registries this plugin shares.
Focal loss: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
"""
from typing import Optional, Union

import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from turtle_plugin.registry import MODELS
from .utils import weight_reduce_loss

__all__ = ['YOLOBCEWithLogitsLoss', 'YOLOFocalLoss']


@MODELS.register_module()
class YOLOBCEWithLogitsLoss(BaseModule):
    """``BCEWithLogits`` with YOLO's ``pos_weight`` (``hyp['obj_pw']``/``hyp['cls_pw']``).

    Args:
        pos_weight (float): weight of the positive term.
        reduction (str): ``'none'``, ``'sum'`` or ``'mean'``.
        loss_weight (float): multiplies the reduced loss.
    """

    def __init__(self, pos_weight: float = 1.0, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__()
        self.pos_weight = pos_weight
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): logits, any shape.
            target (Tensor): targets in ``[0, 1]``, same shape as ``pred``.
            weight (Tensor, optional): element weights broadcastable to ``pred``.
            avg_factor (float | Tensor, optional): divisor of the ``'mean'`` reduction.
            reduction_override (str, optional): replaces ``reduction`` for this call.

        Returns:
            Tensor: the weighted loss.
        """
        loss = self.elementwise(pred, target.to(pred.dtype))
        reduction = reduction_override or self.reduction
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """Unweighted, unreduced loss of logits ``pred`` against ``target`` (same shape)."""
        pos_weight = pred.new_tensor(self.pos_weight) if self.pos_weight != 1.0 else None
        return F.binary_cross_entropy_with_logits(
            pred, target, pos_weight=pos_weight, reduction='none')


@MODELS.register_module()
class YOLOFocalLoss(YOLOBCEWithLogitsLoss):
    """Sigmoid focal loss wrapped around :class:`YOLOBCEWithLogitsLoss` (YOLOv7's
    ``FocalLoss``, chosen there by ``hyp['fl_gamma'] > 0``).

    ``loss = BCE(p, t) * (t * alpha + (1 - t) * (1 - alpha)) * (1 - p_t)^gamma`` with
    ``p_t = t * p + (1 - t) * (1 - p)``: the same as ``torchvision.ops.sigmoid_focal_loss``.

    Args:
        gamma (float): focusing exponent.
        alpha (float): weight of the positive term; a negative value disables the
            alpha balancing (as in torchvision).
        pos_weight (float): weight of the positive BCE term.
        reduction (str): ``'none'``, ``'sum'`` or ``'mean'``.
        loss_weight (float): multiplies the reduced loss.
    """

    def __init__(self,
                 gamma: float = 1.5,
                 alpha: float = 0.25,
                 pos_weight: float = 1.0,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__(pos_weight=pos_weight, reduction=reduction, loss_weight=loss_weight)
        self.gamma = gamma
        self.alpha = alpha

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """Unweighted, unreduced focal loss of logits ``pred`` against ``target``."""
        bce = super().elementwise(pred, target)
        prob = pred.sigmoid()
        p_t = target * prob + (1 - target) * (1 - prob)
        loss = bce * (1.0 - p_t)**self.gamma
        if self.alpha >= 0:
            loss = loss * (target * self.alpha + (1 - target) * (1 - self.alpha))
        return loss
