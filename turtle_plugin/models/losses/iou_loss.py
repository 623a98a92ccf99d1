"""Complete-IoU box loss (Zheng et al., "Distance-IoU Loss", AAAI 2020), as YOLOv5/YOLOv7 use it.

The CIoU value also sets YOLOv7's objectness target (``tobj = CIoU.clamp(0)``), so
:func:`bbox_ciou` is exported on its own.
"""
import math
from typing import Optional, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor

from turtle_plugin.registry import MODELS
from .utils import weight_reduce_loss

__all__ = ['bbox_ciou', 'YOLOCIoULoss']


def bbox_ciou(pred: Tensor, target: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU of paired boxes, in YOLOv7's form.

    ``CIoU = IoU - rho^2 / c^2 - alpha * v`` with ``rho`` the distance between the centres,
    ``c`` the diagonal of the smallest enclosing box, ``v = 4 / pi^2 * (atan(w_t / h_t) -
    atan(w_p / h_p))^2`` and ``alpha = v / (v - IoU + 1 + eps)`` treated as a constant
    (no gradient), as in the paper and YOLOv7.

    Args:
        pred (Tensor): boxes ``(..., 4)`` as ``x1, y1, x2, y2``.
        target (Tensor): boxes of the same shape as ``pred``.
        eps (float): added to heights, the union and the squared diagonal.

    Returns:
        Tensor: CIoU of shape ``pred.shape[:-1]``, in ``[-1.5, 1]``.
    """
    if pred.shape != target.shape or pred.shape[-1] != 4:
        raise ValueError(f'pred and target must both be (..., 4) boxes, got {tuple(pred.shape)} '
                         f'and {tuple(target.shape)}')
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    inter = ((torch.min(px2, tx2) - torch.max(px1, tx1)).clamp(min=0) *
             (torch.min(py2, ty2) - torch.max(py1, ty1)).clamp(min=0))
    pw, ph = px2 - px1, py2 - py1 + eps
    tw, th = tx2 - tx1, ty2 - ty1 + eps
    iou = inter / (pw * ph + tw * th - inter + eps)
    # squared diagonal of the enclosing box and squared distance of the centres
    c2 = ((torch.max(px2, tx2) - torch.min(px1, tx1))**2 +
          (torch.max(py2, ty2) - torch.min(py1, ty1))**2 + eps)
    rho2 = ((tx1 + tx2 - px1 - px2)**2 + (ty1 + ty2 - py1 - py2)**2) / 4
    v = (4 / math.pi**2) * (torch.atan(tw / th) - torch.atan(pw / ph))**2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@MODELS.register_module()
class YOLOCIoULoss(BaseModule):
    """``1 - CIoU`` box regression loss.

    Args:
        eps (float): see :func:`bbox_ciou`.
        reduction (str): ``'none'``, ``'sum'`` or ``'mean'``.
        loss_weight (float): multiplies the reduced loss.
    """

    def __init__(self, eps: float = 1e-7, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__()
        self.eps = eps
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
            pred (Tensor): predicted boxes ``(..., 4)`` xyxy.
            target (Tensor): target boxes ``(..., 4)`` xyxy.
            weight (Tensor, optional): per-box weights ``(...)``; zero drops a box.
            avg_factor (float | Tensor, optional): divisor of the ``'mean'`` reduction.
            reduction_override (str, optional): replaces ``reduction`` for this call.

        Returns:
            Tensor: the weighted loss.
        """
        loss = 1.0 - bbox_ciou(pred, target, self.eps)
        reduction = reduction_override or self.reduction
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
