"""Tensor helpers shared by the YOLOv7 head's box logic and its keypoint branch."""
from typing import Optional

import torch
from torch import Tensor

__all__ = ['grid_cells', 'gather_candidates', 'floating', 'at_least_float32']


def grid_cells(height: int, width: int, like: Tensor) -> Tensor:
    """``(H, W, 2)`` cell coordinates ``(i, j)`` on ``like``'s device and dtype."""
    ys, xs = torch.meshgrid(torch.arange(height, device=like.device, dtype=like.dtype),
                            torch.arange(width, device=like.device, dtype=like.dtype),
                            indexing='ij')
    return torch.stack([xs, ys], dim=-1)


def gather_candidates(level_pred: Tensor, cells: Tensor) -> Tensor:
    """Predictions ``(B, A, H, W, ...)`` at candidate cells ``(B, G, A, 5, 2)`` ->
    ``(B, G, A, 5, ...)``: each anchor's prediction at its own candidate cells."""
    batch_size, num_anchors = level_pred.shape[:2]
    batch_inds = torch.arange(batch_size, device=cells.device).view(-1, 1, 1, 1)
    anchor_inds = torch.arange(num_anchors, device=cells.device).view(1, 1, -1, 1)
    return level_pred[batch_inds, anchor_inds, cells[..., 1], cells[..., 0]]


def floating(tensor: Tensor) -> Tensor:
    """Integer tensors become float32; floating tensors keep their dtype."""
    return tensor if tensor.is_floating_point() else tensor.float()


def at_least_float32(tensor: Optional[Tensor]) -> Optional[Tensor]:
    """Half-precision maps are lifted to float32 for the loss; float64 stays float64."""
    if tensor is None or tensor.dtype in (torch.float32, torch.float64):
        return tensor
    return tensor.float()
