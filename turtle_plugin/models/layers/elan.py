"""ELAN and ELAN-W blocks of YOLOv7 (Wang et al., "YOLOv7: Trainable bag-of-freebies sets new
state-of-the-art for real-time object detectors", CVPR 2023, Fig. 2(c) and Sec. 3.1).
"""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from turtle_plugin.registry import MODELS
from .conv import YOLOV7_NORM_CFG, YOLOV7_SILU_CFG, build_conv

__all__ = ['ELANBlock']


@MODELS.register_module()
class ELANBlock(BaseModule):
    """Efficient Layer Aggregation Network block.

    Two 1x1 convs split the input into a short and a main branch; the main branch runs through
    ``num_blocks`` stacks of ``num_convs_in_block`` 3x3 convs and the output of every stack is
    kept. The kept maps are concatenated newest first -- ``[stack_n, ..., stack_1, main, short]``,
    the order of the original YAML ``Concat`` layers, so converted weights of ``final_conv`` line
    up -- and a 1x1 conv fuses them. One class covers every ELAN of the original configs:

    - backbone ELAN of YOLOv7-l (x): 2 (3) stacks of 2 convs, ``block_channels == mid_channels``;
    - neck ELAN-W of YOLOv7-l: 4 stacks of 1 conv at ``block_channels == mid_channels // 2``, so
      every 3x3 output reaches the concat (the "wider" concat);
    - YOLOv7-tiny (backbone and neck): 2 stacks of 1 conv, ``block_channels == mid_channels``.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels of the fusing 1x1 conv.
        mid_channels (int): output channels of each of the two 1x1 branch convs.
        block_channels (int): output channels of every 3x3 conv.
        num_blocks (int): number of kept stacks of 3x3 convs. Defaults to 2.
        num_convs_in_block (int): 3x3 convs per stack. Defaults to 2.
        use_depthwise (bool): make the 3x3 convs depthwise-separable. Defaults to False.
        norm_cfg (dict): norm layer config. Defaults to BN with eps 1e-3, momentum 0.03.
        act_cfg (dict): activation config. Defaults to SiLU.
        init_cfg (dict or list[dict], optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 mid_channels: int,
                 block_channels: int,
                 num_blocks: int = 2,
                 num_convs_in_block: int = 2,
                 use_depthwise: bool = False,
                 norm_cfg: dict = YOLOV7_NORM_CFG,
                 act_cfg: dict = YOLOV7_SILU_CFG,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if num_blocks < 1 or num_convs_in_block < 1:
            raise ValueError(f'ELANBlock needs at least one stack of at least one 3x3 conv, got '
                             f'num_blocks={num_blocks}, num_convs_in_block={num_convs_in_block}')
        conv_cfg = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.short_conv = build_conv(in_channels, mid_channels, 1, **conv_cfg)
        self.main_conv = build_conv(in_channels, mid_channels, 1, **conv_cfg)
        self.blocks = nn.ModuleList()
        for i in range(num_blocks):
            block_in = mid_channels if i == 0 else block_channels
            self.blocks.append(
                nn.Sequential(*[
                    build_conv(block_in if j == 0 else block_channels, block_channels, 3,
                               use_depthwise=use_depthwise, **conv_cfg)
                    for j in range(num_convs_in_block)
                ]))
        concat_channels = 2 * mid_channels + num_blocks * block_channels
        self.final_conv = build_conv(concat_channels, out_channels, 1, **conv_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H, W)."""
        x_main = self.main_conv(x)
        kept = [self.short_conv(x), x_main]
        for block in self.blocks:
            x_main = block(x_main)
            kept.append(x_main)
        # Newest first: (B, 2 * mid + num_blocks * block, H, W)
        return self.final_conv(torch.cat(kept[::-1], dim=1))
