"""Down-sampling layers of YOLOv7: the MP block (max-pool branch + strided-conv branch, Fig. 2 of
the YOLOv7 paper's "transition" layers), a strided 3x3 conv and a plain 2x2 max pool.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from turtle_plugin.registry import MODELS
from .conv import YOLOV7_NORM_CFG, YOLOV7_SILU_CFG, build_conv

__all__ = ['MaxPoolAndStrideConvBlock', 'DOWNSAMPLE_TYPES', 'build_downsample']

# 'mp': MaxPoolAndStrideConvBlock (YOLOv7-l/x), 'conv': 3x3 stride-2 conv (tiny neck, l/x stem
# stage), 'maxpool': 2x2 max pool that keeps the channels (tiny backbone).
DOWNSAMPLE_TYPES = ('mp', 'conv', 'maxpool')


@MODELS.register_module()
class MaxPoolAndStrideConvBlock(BaseModule):
    """The MP block: halve the resolution along two branches and concatenate them.

    Branch 1 max-pools (2x2, stride 2) then projects with a 1x1 conv; branch 2 projects with a 1x1
    conv then down-samples with a 3x3 stride-2 conv. Each branch gives ``out_channels // 2``
    channels; the output is ``[stride_conv_branch, maxpool_branch]``, the order of the original
    ``Concat``.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels, even.
        norm_cfg (dict): norm layer config. Defaults to BN with eps 1e-3, momentum 0.03.
        act_cfg (dict): activation config. Defaults to SiLU.
        init_cfg (dict or list[dict], optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: dict = YOLOV7_NORM_CFG,
                 act_cfg: dict = YOLOV7_SILU_CFG,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if out_channels % 2:
            raise ValueError(f'MaxPoolAndStrideConvBlock splits out_channels between two '
                             f'branches and needs it even, got {out_channels}')
        branch_channels = out_channels // 2
        conv_cfg = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.maxpool_branch = nn.Sequential(
            nn.MaxPool2d(kernel_size=2, stride=2),
            build_conv(in_channels, branch_channels, 1, **conv_cfg))
        self.stride_conv_branch = nn.Sequential(
            build_conv(in_channels, branch_channels, 1, **conv_cfg),
            build_conv(branch_channels, branch_channels, 3, stride=2, **conv_cfg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H / 2, W / 2), H and W even."""
        return torch.cat([self.stride_conv_branch(x), self.maxpool_branch(x)], dim=1)


def build_downsample(downsample_type: str,
                     in_channels: int,
                     out_channels: int,
                     norm_cfg: dict = YOLOV7_NORM_CFG,
                     act_cfg: dict = YOLOV7_SILU_CFG) -> nn.Module:
    """Build a layer that halves the resolution.

    Args:
        downsample_type (str): one of ``DOWNSAMPLE_TYPES``: ``'mp'``, ``'conv'`` or
            ``'maxpool'``.
        in_channels (int): input channels.
        out_channels (int): output channels; must equal ``in_channels`` for ``'maxpool'``.
        norm_cfg (dict): norm layer config. Defaults to BN with eps 1e-3, momentum 0.03.
        act_cfg (dict): activation config. Defaults to SiLU.

    Returns:
        nn.Module: the down-sampling layer.
    """
    if downsample_type == 'mp':
        return MaxPoolAndStrideConvBlock(in_channels, out_channels, norm_cfg, act_cfg)
    if downsample_type == 'conv':
        return build_conv(in_channels, out_channels, 3, stride=2, norm_cfg=norm_cfg,
                          act_cfg=act_cfg)
    if downsample_type == 'maxpool':
        if in_channels != out_channels:
            raise ValueError(f"a 'maxpool' down-sample keeps the channels, but in_channels="
                             f'{in_channels} and out_channels={out_channels}')
        return nn.MaxPool2d(kernel_size=2, stride=2)
    raise ValueError(f'unknown downsample_type {downsample_type!r}, expected one of '
                     f'{DOWNSAMPLE_TYPES}')
