"""Reduction shared by the YOLO losses: element-wise loss -> weighted sum / mean."""
from typing import Optional, Union

import torch
from torch import Tensor

__all__ = ['weight_reduce_loss', 'reduce_keypoint_loss']


def weight_reduce_loss(loss: Tensor,
                       weight: Optional[Tensor] = None,
                       reduction: str = 'mean',
                       avg_factor: Optional[Union[float, Tensor]] = None) -> Tensor:
    """Weight an element-wise loss and reduce it.

    Entries whose weight is zero are *selected away* (``torch.where``), not multiplied by zero,
    so a non-finite loss at an unused entry (a padded candidate, say) can neither reach the
    result nor its gradient.

    Args:
        loss (Tensor): element-wise loss, any shape.
        weight (Tensor, optional): weights broadcastable to ``loss``; ``None`` weighs every
            entry 1.
        reduction (str): ``'none'``, ``'sum'`` or ``'mean'``.
        avg_factor (float | Tensor, optional): with ``'mean'``, divide the weighted sum by this
            instead of by the number of entries. It is clamped to the dtype's epsilon, so a
            zero count (no positives, no visible keypoints) gives a zero loss, not NaN.

    Returns:
        Tensor: the reduced loss (a scalar unless ``reduction='none'``).
    """
    if reduction not in ('none', 'sum', 'mean'):
        raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")
    if weight is not None:
        weight = weight.to(loss.dtype).expand_as(loss)
        loss = torch.where(weight != 0, loss * weight, loss.new_zeros(()))
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    if avg_factor is None:
        return loss.mean()
    avg_factor = torch.as_tensor(avg_factor, dtype=loss.dtype, device=loss.device)
    return loss.sum() / avg_factor.clamp(min=torch.finfo(loss.dtype).eps)


def reduce_keypoint_loss(loss: Tensor,
                         visible: Tensor,
                         weight: Optional[Tensor] = None,
                         reduction: str = 'mean',
                         avg_factor: Optional[Union[float, Tensor]] = None) -> Tensor:
    """Reduce a per-keypoint loss over the visible keypoints of the kept instances.

    Args:
        loss (Tensor): ``(..., K)`` loss of each keypoint.
        visible (Tensor): ``(..., K)``; a keypoint counts where it is > 0.
        weight (Tensor, optional): instance weights ``(...)``; zero drops an instance.
        reduction (str): ``'none'``, ``'sum'`` or ``'mean'``.
        avg_factor (float | Tensor, optional): divisor of the ``'mean'`` reduction; defaults to
            the number of keypoints that count.

    Returns:
        Tensor: the reduced loss (see :func:`weight_reduce_loss`).
    """
    mask = visible > 0
    if weight is not None:
        mask = mask & (weight[..., None] != 0)
    if avg_factor is None and reduction == 'mean':
        avg_factor = mask.sum()
    return weight_reduce_loss(loss, mask, reduction, avg_factor)
