"""Building blocks shared by the YOLOv7 backbone and neck, and the weight EMA of training."""
from .conv import (TORCH_DEFAULT_CONV_INIT, YOLOV7_LEAKY_CFG, YOLOV7_NORM_CFG, YOLOV7_SILU_CFG,
                   build_conv)
from .downsample import DOWNSAMPLE_TYPES, MaxPoolAndStrideConvBlock, build_downsample
from .elan import ELANBlock
from .ema import SyncFreeExpMomentumEMA
from .fuse import fuse_conv_bn
from .rep_conv import RepConv
from .sppcspc import SPPCSPCBlock, SPPCSPCTinyBlock
from .transformer import TransformerEncoderBlock, sincos_position_embedding_2d

__all__ = [
    'TORCH_DEFAULT_CONV_INIT', 'YOLOV7_NORM_CFG', 'YOLOV7_SILU_CFG', 'YOLOV7_LEAKY_CFG',
    'build_conv', 'ELANBlock', 'MaxPoolAndStrideConvBlock', 'DOWNSAMPLE_TYPES',
    'build_downsample', 'SPPCSPCBlock', 'SPPCSPCTinyBlock', 'RepConv', 'fuse_conv_bn',
    'TransformerEncoderBlock', 'sincos_position_embedding_2d', 'SyncFreeExpMomentumEMA'
]
