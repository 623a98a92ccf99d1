"""Conv + BN + activation blocks of YOLOv7 (the ``Conv`` layer of the original YAML configs).

YOLOv7 convolutions carry no bias, are followed by a BatchNorm (eps 1e-3, momentum 0.03) and
an activation (SiLU for YOLOv7-l/x, LeakyReLU(0.1) for YOLOv7-tiny), and pad to keep the size
("same" padding, ``kernel_size // 2``). MMCV's ``ConvModule`` is exactly that block; this file
only fixes the padding rule, offers the depthwise-separable form and holds the shared defaults.
"""
import math
from typing import Optional

import torch.nn as nn
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule

__all__ = [
    'TORCH_DEFAULT_CONV_INIT', 'YOLOV7_NORM_CFG', 'YOLOV7_SILU_CFG', 'YOLOV7_LEAKY_CFG',
    'build_conv'
]

# The BatchNorm every YOLOv7 conv uses (the original sets eps / momentum after building).
YOLOV7_NORM_CFG = dict(type='BN', momentum=0.03, eps=0.001)
# Activations of the l / x variants and of the tiny variant.
YOLOV7_SILU_CFG = dict(type='SiLU', inplace=True)
YOLOV7_LEAKY_CFG = dict(type='LeakyReLU', negative_slope=0.1, inplace=True)
# PyTorch's default conv init, which the original YOLOv7 trains with (init_cfg of the models).
TORCH_DEFAULT_CONV_INIT = dict(
    type='Kaiming',
    layer='Conv2d',
    a=math.sqrt(5),
    distribution='uniform',
    mode='fan_in',
    nonlinearity='leaky_relu')


def build_conv(in_channels: int,
               out_channels: int,
               kernel_size: int = 1,
               stride: int = 1,
               use_depthwise: bool = False,
               norm_cfg: Optional[dict] = YOLOV7_NORM_CFG,
               act_cfg: Optional[dict] = YOLOV7_SILU_CFG) -> nn.Module:
    """Build a bias-free conv + norm + activation with "same" padding.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int): odd square kernel size. Defaults to 1.
        stride (int): stride. Defaults to 1.
        use_depthwise (bool): build a depthwise ``kernel_size`` conv (with its own norm and
            activation) followed by a pointwise 1x1 conv instead of one dense conv.
            Defaults to False.
        norm_cfg (dict, optional): norm layer config. Defaults to YOLOv7's BatchNorm.
        act_cfg (dict, optional): activation config, None for none. Defaults to SiLU.

    Returns:
        nn.Module: a ``ConvModule`` (state dict ``conv.weight``, ``bn.*``) or a
        ``DepthwiseSeparableConvModule`` (``depthwise_conv.*``, ``pointwise_conv.*``).
    """
    if kernel_size % 2 != 1:
        raise ValueError(f'build_conv pads to keep the size and needs an odd kernel_size, '
                         f'got {kernel_size}')
    conv_type = DepthwiseSeparableConvModule if use_depthwise else ConvModule
    return conv_type(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg)
