"""A small transformer encoder over the pixels of a feature map (ViT, Dosovitskiy et al., ICLR
2021; the pre-norm layer of "On Layer Normalization in the Transformer Architecture", 2020), to
give the deepest backbone stage global context. It is optional and off by default.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from turtle_plugin.registry import MODELS

__all__ = ['TransformerEncoderBlock', 'sincos_position_embedding_2d']


def sincos_position_embedding_2d(height: int,
                                 width: int,
                                 channels: int,
                                 temperature: float = 10000.,
                                 device: Optional[torch.device] = None,
                                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding, so any input size works.

    Args:
        height (int): map height.
        width (int): map width.
        channels (int): embedding size, a multiple of 4 (sin/cos of x and of y).
        temperature (float): frequency base. Defaults to 10000.
        device (torch.device, optional): device of the result. Defaults to None (CPU).
        dtype (torch.dtype): dtype of the result. Defaults to float32.

    Returns:
        torch.Tensor: (height * width, channels), row-major over (y, x).
    """
    if channels % 4:
        raise ValueError(f'a 2-D sin-cos embedding needs channels divisible by 4, got {channels}')
    quarter = channels // 4
    omega = 1. / temperature**(torch.arange(quarter, device=device, dtype=torch.float32) /
                               quarter)
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing='ij')
    y_angles = ys.reshape(-1, 1) * omega  # (H*W, C/4)
    x_angles = xs.reshape(-1, 1) * omega
    embedding = torch.cat(
        [x_angles.sin(), x_angles.cos(), y_angles.sin(), y_angles.cos()], dim=1)
    return embedding.to(dtype)


@MODELS.register_module()
class TransformerEncoderBlock(BaseModule):
    """Pre-norm transformer encoder layers applied to a (B, C, H, W) map, shape preserved.

    Every pixel is a token; a fixed 2-D sin-cos position embedding is added before the first
    layer. Each layer is ``x + MHSA(LN(x))`` then ``x + MLP(LN(x))``.

    Args:
        channels (int): channels of the map (token size), divisible by ``num_heads`` and by 4.
        num_heads (int): attention heads. Defaults to 8.
        mlp_ratio (float): hidden size of the MLP over ``channels``. Defaults to 2.0.
        num_layers (int): stacked encoder layers. Defaults to 1.
        dropout (float): dropout in attention and MLP. Defaults to 0.0.
        init_cfg (dict or list[dict], optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 num_heads: int = 8,
                 mlp_ratio: float = 2.0,
                 num_layers: int = 1,
                 dropout: float = 0.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if channels % num_heads:
            raise ValueError(f'TransformerEncoderBlock: channels={channels} is not divisible by '
                             f'num_heads={num_heads}')
        if channels % 4:
            raise ValueError(f'TransformerEncoderBlock: channels={channels} must be divisible by '
                             f'4 for the 2-D position embedding')
        self.channels = channels
        layer = nn.TransformerEncoderLayer(
            d_model=channels,
            nhead=num_heads,
            dim_feedforward=int(math.ceil(channels * mlp_ratio)),
            dropout=dropout,
            activation='gelu',
            batch_first=True,
            norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, H*W, C)
        tokens = tokens + sincos_position_embedding_2d(h, w, c, device=x.device, dtype=x.dtype)
        tokens = self.encoder(tokens)
        return tokens.transpose(1, 2).reshape(b, c, h, w)
