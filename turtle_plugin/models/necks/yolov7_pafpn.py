"""YOLOv7 neck: SPPCSPC on the deepest map, then a top-down and a bottom-up path of ELAN(-W)
blocks (a PAFPN, Liu et al., CVPR 2018), then one 3x3 output layer per level -- RepConv for
YOLOv7-l, a plain conv for tiny and x. Variants follow the ``head`` part of the original
``cfg/training/yolov7-tiny.yaml``, ``yolov7.yaml`` and ``yolov7x.yaml`` layer for layer.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from turtle_plugin.registry import MODELS
from ..layers import (TORCH_DEFAULT_CONV_INIT, YOLOV7_LEAKY_CFG, YOLOV7_NORM_CFG,
                      YOLOV7_SILU_CFG, ELANBlock, RepConv, SPPCSPCBlock, SPPCSPCTinyBlock,
                      build_conv, build_downsample)

__all__ = ['YOLOv7PAFPN']


def _build_reduce_layer(layer_type: str, in_channels: int, out_channels: int,
                        conv_cfg: dict) -> nn.Module:
    """The layer on the deepest input: ``'sppcspc'`` or ``'sppcspc_tiny'``."""
    layer_types = dict(sppcspc=SPPCSPCBlock, sppcspc_tiny=SPPCSPCTinyBlock)
    if layer_type not in layer_types:
        raise ValueError(f'unknown reduce layer {layer_type!r}, expected one of '
                         f'{list(layer_types)}')
    return layer_types[layer_type](in_channels, out_channels, **conv_cfg)


def _build_out_layer(layer_type: str, in_channels: int, out_channels: int,
                     conv_cfg: dict) -> nn.Module:
    """The 3x3 output layer of a level: ``'repconv'`` or ``'conv'``."""
    if layer_type == 'repconv':
        return RepConv(in_channels, out_channels, **conv_cfg)
    if layer_type == 'conv':
        return build_conv(in_channels, out_channels, 3, **conv_cfg)
    raise ValueError(f"unknown out layer {layer_type!r}, expected 'repconv' or 'conv'")


@MODELS.register_module()
class YOLOv7PAFPN(BaseModule):
    """YOLOv7 path-aggregation neck over three levels (P3, P4, P5; strides 8, 16, 32).

    With ``c`` the per-level ``channels`` of the arch row::

        P5: reduce_layer (SPPCSPC)                       -> top_down[2]    (c5)
        Pi, i = 4, 3: cat[lateral_convs(in_i), up(upsample_convs(top_down[i+1]))]
                      -> top_down_blocks (ELAN)          -> top_down[i]    (c_i)
        P3 out = top_down[3];  Pi, i = 4, 5: cat[downsample_layers(out_{i-1}), top_down[i]]
                      -> bottom_up_blocks (ELAN)         -> out_i          (c_i)
        out_layers (RepConv / 3x3 conv)                  -> c_i to out_channels[i]

    Module lists are indexed by level (0 = P3): ``upsample_convs``, ``lateral_convs`` and
    ``top_down_blocks`` produce levels 0 and 1; ``downsample_layers[i]`` and
    ``bottom_up_blocks[i]`` produce level ``i + 1``.

    Args:
        arch (str): ``'tiny'``, ``'l'`` or ``'x'``, a row of ``arch_settings``. Defaults to 'l'.
        in_channels (Sequence[int], optional): channels of the three inputs; None takes the
            matching backbone's. Defaults to None.
        out_channels (Sequence[int], optional): channels of the three outputs; None takes the
            original's (twice the inner width). Defaults to None.
        use_depthwise (bool): make the 3x3 convs inside the ELAN blocks depthwise-separable.
            Defaults to False.
        norm_cfg (dict): norm layer config. Defaults to BN with eps 1e-3, momentum 0.03.
        act_cfg (dict, optional): activation config; None takes the variant's own (SiLU for l/x,
            LeakyReLU(0.1) for tiny). Defaults to None.
        init_cfg (dict or list[dict], optional): initialization config. Defaults to PyTorch's
            default conv init, as the original.
    """

    # in/out_channels: defaults of the arguments; channels: inner width per level (P3, P4, P5);
    # elan_mid_channels / elan_block_channels: per level, ELANBlock's 1x1-branch / 3x3 widths.
    arch_settings = {
        'tiny': dict(
            in_channels=(128, 256, 512),
            channels=(64, 128, 256),
            out_channels=(128, 256, 512),
            elan_mid_channels=(32, 64, 128),
            elan_block_channels=(32, 64, 128),
            num_blocks=2,
            num_convs_in_block=1,
            reduce_layer='sppcspc_tiny',
            downsample='conv',
            out_layer='conv',
            act_cfg=YOLOV7_LEAKY_CFG),
        'l': dict(
            in_channels=(512, 1024, 1024),
            channels=(128, 256, 512),
            out_channels=(256, 512, 1024),
            elan_mid_channels=(128, 256, 512),
            elan_block_channels=(64, 128, 256),
            num_blocks=4,
            num_convs_in_block=1,
            reduce_layer='sppcspc',
            downsample='mp',
            out_layer='repconv',
            act_cfg=YOLOV7_SILU_CFG),
        'x': dict(
            in_channels=(640, 1280, 1280),
            channels=(160, 320, 640),
            out_channels=(320, 640, 1280),
            elan_mid_channels=(128, 256, 512),
            elan_block_channels=(128, 256, 512),
            num_blocks=3,
            num_convs_in_block=2,
            reduce_layer='sppcspc',
            downsample='mp',
            out_layer='conv',
            act_cfg=YOLOV7_SILU_CFG),
    }

    def __init__(self,
                 arch: str = 'l',
                 in_channels: Optional[Sequence[int]] = None,
                 out_channels: Optional[Sequence[int]] = None,
                 use_depthwise: bool = False,
                 norm_cfg: dict = YOLOV7_NORM_CFG,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = TORCH_DEFAULT_CONV_INIT):
        super().__init__(init_cfg=init_cfg)
        if arch not in self.arch_settings:
            raise KeyError(f'YOLOv7PAFPN: unknown arch {arch!r}, expected one of '
                           f'{list(self.arch_settings)}')
        setting = self.arch_settings[arch]
        channels = setting['channels']
        num_levels = len(channels)
        in_channels = list(in_channels or setting['in_channels'])
        out_channels = list(out_channels or setting['out_channels'])
        for name, value in (('in_channels', in_channels), ('out_channels', out_channels)):
            if len(value) != num_levels:
                raise ValueError(f'YOLOv7PAFPN: {name} has {len(value)} entries but the neck '
                                 f'has {num_levels} levels (P3, P4, P5)')
        self.arch = arch
        self.in_channels = in_channels
        self.out_channels: List[int] = out_channels
        conv_cfg = dict(norm_cfg=norm_cfg, act_cfg=act_cfg or setting['act_cfg'])

        def elan(level: int) -> ELANBlock:
            # Every ELAN here sees a concat of two c_level-channel maps.
            return ELANBlock(2 * channels[level], channels[level],
                             setting['elan_mid_channels'][level],
                             setting['elan_block_channels'][level], setting['num_blocks'],
                             setting['num_convs_in_block'], use_depthwise, **conv_cfg)

        self.reduce_layer = _build_reduce_layer(setting['reduce_layer'], in_channels[-1],
                                                channels[-1], conv_cfg)
        self.upsample = nn.Upsample(scale_factor=2, mode='nearest')
        self.upsample_convs = nn.ModuleList(
            build_conv(channels[i + 1], channels[i], 1, **conv_cfg)
            for i in range(num_levels - 1))
        self.lateral_convs = nn.ModuleList(
            build_conv(in_channels[i], channels[i], 1, **conv_cfg) for i in range(num_levels - 1))
        self.top_down_blocks = nn.ModuleList(elan(i) for i in range(num_levels - 1))
        self.downsample_layers = nn.ModuleList(
            build_downsample(setting['downsample'], channels[i], channels[i + 1], **conv_cfg)
            for i in range(num_levels - 1))
        self.bottom_up_blocks = nn.ModuleList(elan(i + 1) for i in range(num_levels - 1))
        self.out_layers = nn.ModuleList(
            _build_out_layer(setting['out_layer'], channels[i], out_channels[i], conv_cfg)
            for i in range(num_levels))

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple:
        """Three maps (B, in_channels[i], H_i, W_i), each level half the size of the one before
        -> three maps (B, out_channels[i], H_i, W_i)."""
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'YOLOv7PAFPN expects {len(self.in_channels)} input maps, got '
                             f'{len(inputs)}')
        top_down = [None] * (len(inputs) - 1) + [self.reduce_layer(inputs[-1])]
        for i in range(len(inputs) - 2, -1, -1):  # P4 then P3
            upsampled = self.upsample(self.upsample_convs[i](top_down[i + 1]))
            lateral = self.lateral_convs[i](inputs[i])
            top_down[i] = self.top_down_blocks[i](torch.cat([lateral, upsampled], dim=1))
        outs = [top_down[0]]
        for i in range(len(inputs) - 1):  # P4 then P5
            downsampled = self.downsample_layers[i](outs[-1])
            outs.append(self.bottom_up_blocks[i](torch.cat([downsampled, top_down[i + 1]], 1)))
        return tuple(layer(out) for layer, out in zip(self.out_layers, outs))

    def switch_to_deploy(self, test_cfg: Optional[dict] = None) -> None:
        """Re-parameterise every RepConv into a single 3x3 conv (no-op for tiny and x).

        Args:
            test_cfg (dict, optional): unused; MMPose's ``BasePoseEstimator.switch_to_deploy``
                passes its test config to every child that has this method.
        """
        for module in list(self.modules()):
            if isinstance(module, RepConv):
                module.switch_to_deploy()
