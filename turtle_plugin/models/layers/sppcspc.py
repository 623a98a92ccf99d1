"""Spatial pyramid pooling with a cross-stage partial split (SPPCSPC) -- the first layer of the
YOLOv7 neck -- and the lighter variant of YOLOv7-tiny (``yolov7-tiny.yaml`` layers 29-37).
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from turtle_plugin.registry import MODELS
from .conv import YOLOV7_LEAKY_CFG, YOLOV7_NORM_CFG, YOLOV7_SILU_CFG, build_conv

__all__ = ['SPPCSPCBlock', 'SPPCSPCTinyBlock']


def _same_size_pools(kernel_sizes: Sequence[int]) -> nn.ModuleList:
    """Stride-1 max pools that keep the size, one per odd kernel size."""
    if any(k % 2 != 1 for k in kernel_sizes):
        raise ValueError(f'SPP pools keep the size and need odd kernel_sizes, got {kernel_sizes}')
    return nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)


@MODELS.register_module()
class SPPCSPCBlock(BaseModule):
    """SPPCSPC of YOLOv7-l/x.

    The main branch (1x1, 3x3, 1x1 convs) is max-pooled at several window sizes, the map and its
    pools are concatenated ``[x, pool_5, pool_9, pool_13]`` and fused by a 1x1 and a 3x3 conv; a
    1x1 short branch joins it before the final 1x1 conv (``[main, short]``).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        expand_ratio (float): hidden channels are ``int(2 * out_channels * expand_ratio)``.
            Defaults to 0.5.
        kernel_sizes (Sequence[int]): max-pool windows. Defaults to (5, 9, 13).
        norm_cfg (dict): norm layer config. Defaults to BN with eps 1e-3, momentum 0.03.
        act_cfg (dict): activation config. Defaults to SiLU.
        init_cfg (dict or list[dict], optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expand_ratio: float = 0.5,
                 kernel_sizes: Sequence[int] = (5, 9, 13),
                 norm_cfg: dict = YOLOV7_NORM_CFG,
                 act_cfg: dict = YOLOV7_SILU_CFG,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        hidden = int(2 * out_channels * expand_ratio)
        conv_cfg = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.main_convs = nn.Sequential(
            build_conv(in_channels, hidden, 1, **conv_cfg),
            build_conv(hidden, hidden, 3, **conv_cfg),
            build_conv(hidden, hidden, 1, **conv_cfg))
        self.poolings = _same_size_pools(kernel_sizes)
        self.fuse_convs = nn.Sequential(
            build_conv((len(kernel_sizes) + 1) * hidden, hidden, 1, **conv_cfg),
            build_conv(hidden, hidden, 3, **conv_cfg))
        self.short_conv = build_conv(in_channels, hidden, 1, **conv_cfg)
        self.final_conv = build_conv(2 * hidden, out_channels, 1, **conv_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H, W)."""
        x_main = self.main_convs(x)
        pooled = torch.cat([x_main] + [pool(x_main) for pool in self.poolings], dim=1)
        return self.final_conv(torch.cat([self.fuse_convs(pooled), self.short_conv(x)], dim=1))


@MODELS.register_module()
class SPPCSPCTinyBlock(BaseModule):
    """SPPCSPC of YOLOv7-tiny: no 3x3 convs, one 1x1 conv per branch.

    The main branch's 1x1 conv output is max-pooled, concatenated largest window first
    (``[pool_13, pool_9, pool_5, x]``, the original order) and fused by a 1x1 conv; it joins the
    1x1 short branch (``[main, short]``) before the final 1x1 conv.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels (also the hidden width).
        kernel_sizes (Sequence[int]): max-pool windows. Defaults to (5, 9, 13).
        norm_cfg (dict): norm layer config. Defaults to BN with eps 1e-3, momentum 0.03.
        act_cfg (dict): activation config. Defaults to LeakyReLU(0.1).
        init_cfg (dict or list[dict], optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_sizes: Sequence[int] = (5, 9, 13),
                 norm_cfg: dict = YOLOV7_NORM_CFG,
                 act_cfg: dict = YOLOV7_LEAKY_CFG,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        conv_cfg = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.short_conv = build_conv(in_channels, out_channels, 1, **conv_cfg)
        self.main_conv = build_conv(in_channels, out_channels, 1, **conv_cfg)
        self.poolings = _same_size_pools(kernel_sizes)
        self.fuse_conv = build_conv((len(kernel_sizes) + 1) * out_channels, out_channels, 1,
                                    **conv_cfg)
        self.final_conv = build_conv(2 * out_channels, out_channels, 1, **conv_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H, W)."""
        x_main = self.main_conv(x)
        pooled = torch.cat([pool(x_main) for pool in self.poolings[::-1]] + [x_main], dim=1)
        return self.final_conv(torch.cat([self.fuse_conv(pooled), self.short_conv(x)], dim=1))
