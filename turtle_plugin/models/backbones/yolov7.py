"""YOLOv7 backbone (Wang et al., CVPR 2023): a conv stem, then four stages that each halve the
resolution and aggregate features with an ELAN block. Variants follow the original
``cfg/training/yolov7-tiny.yaml``, ``yolov7.yaml`` and ``yolov7x.yaml`` layer for layer.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from turtle_plugin.registry import MODELS
from ..layers import (TORCH_DEFAULT_CONV_INIT, YOLOV7_LEAKY_CFG, YOLOV7_NORM_CFG,
                      YOLOV7_SILU_CFG, ELANBlock, TransformerEncoderBlock, build_conv,
                      build_downsample)

__all__ = ['YOLOv7Backbone']


@MODELS.register_module()
class YOLOv7Backbone(BaseModule):
    """YOLOv7 backbone.

    Outputs are indexed ``0: stem (stride 2), 1..4: stage1..stage4 (strides 4, 8, 16, 32)``.
    Each stage is ``nn.Sequential(downsample, ELANBlock)``; stage4 ends with the optional
    attention block (``nn.Identity()`` when off, so state-dict keys do not change).

    Args:
        arch (str): ``'tiny'``, ``'l'`` or ``'x'``, a row of ``arch_settings``. Defaults to 'l'.
        in_channels (int): input image channels. Defaults to 3.
        out_indices (Sequence[int]): which of the 5 outputs to return. Defaults to (2, 3, 4).
        frozen_stages (int): freeze (eval mode, no gradients) the stem and stages 1 to
            ``frozen_stages``; -1 freezes nothing. Defaults to -1.
        norm_eval (bool): keep every BN in eval mode while training. Defaults to False.
        use_depthwise (bool): make the 3x3 convs inside the ELAN blocks depthwise-separable.
            Defaults to False.
        use_attention (bool): append a ``TransformerEncoderBlock`` to the deepest stage.
            Defaults to False.
        attention_cfg (dict, optional): keyword arguments of that block (``num_heads``,
            ``mlp_ratio``, ``num_layers``, ``dropout``). Defaults to None (its defaults).
        norm_cfg (dict): norm layer config. Defaults to BN with eps 1e-3, momentum 0.03.
        act_cfg (dict, optional): activation config; None takes the variant's own (SiLU for l/x,
            LeakyReLU(0.1) for tiny). Defaults to None.
        init_cfg (dict or list[dict], optional): initialization config. Defaults to PyTorch's
            default conv init, as the original.
    """

    # stem: (out_channels, stride) of each 3x3 conv.
    # stages: [downsample type, downsample out channels, ELAN mid channels, ELAN out channels];
    # every ELAN of a variant has num_blocks stacks of num_convs_in_block 3x3 convs at the
    # width of its 1x1 branches (see ELANBlock).
    arch_settings = {
        'tiny': dict(
            stem=[(32, 2)],
            stages=[['conv', 64, 32, 64], ['maxpool', 64, 64, 128], ['maxpool', 128, 128, 256],
                    ['maxpool', 256, 256, 512]],
            num_blocks=2,
            num_convs_in_block=1,
            act_cfg=YOLOV7_LEAKY_CFG),
        'l': dict(
            stem=[(32, 1), (64, 2), (64, 1)],
            stages=[['conv', 128, 64, 256], ['mp', 256, 128, 512], ['mp', 512, 256, 1024],
                    ['mp', 1024, 256, 1024]],
            num_blocks=2,
            num_convs_in_block=2,
            act_cfg=YOLOV7_SILU_CFG),
        'x': dict(
            stem=[(40, 1), (80, 2), (80, 1)],
            stages=[['conv', 160, 64, 320], ['mp', 320, 128, 640], ['mp', 640, 256, 1280],
                    ['mp', 1280, 256, 1280]],
            num_blocks=3,
            num_convs_in_block=2,
            act_cfg=YOLOV7_SILU_CFG),
    }

    def __init__(self,
                 arch: str = 'l',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (2, 3, 4),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 use_depthwise: bool = False,
                 use_attention: bool = False,
                 attention_cfg: Optional[dict] = None,
                 norm_cfg: dict = YOLOV7_NORM_CFG,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = TORCH_DEFAULT_CONV_INIT):
        super().__init__(init_cfg=init_cfg)
        if arch not in self.arch_settings:
            raise KeyError(f'YOLOv7Backbone: unknown arch {arch!r}, expected one of '
                           f'{list(self.arch_settings)}')
        setting = self.arch_settings[arch]
        num_outputs = len(setting['stages']) + 1
        if not out_indices or any(not 0 <= i < num_outputs for i in out_indices):
            raise ValueError(f'YOLOv7Backbone: out_indices {tuple(out_indices)} must be non-empty '
                             f'and within 0..{num_outputs - 1} (0 is the stem)')
        if not -1 <= frozen_stages < num_outputs:
            raise ValueError(f'YOLOv7Backbone: frozen_stages={frozen_stages} must be within '
                             f'-1..{num_outputs - 1}')
        self.arch = arch
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        conv_cfg = dict(norm_cfg=norm_cfg, act_cfg=act_cfg or setting['act_cfg'])

        stem, channels = [], in_channels
        for out_ch, stride in setting['stem']:
            stem.append(build_conv(channels, out_ch, 3, stride=stride, **conv_cfg))
            channels = out_ch
        self.stem = nn.Sequential(*stem)
        self.layers = ['stem']
        all_channels = [channels]

        for i, (ds_type, ds_channels, mid_channels, out_ch) in enumerate(setting['stages']):
            stage = [
                build_downsample(ds_type, channels, ds_channels, **conv_cfg),
                ELANBlock(ds_channels, out_ch, mid_channels, mid_channels, setting['num_blocks'],
                          setting['num_convs_in_block'], use_depthwise, **conv_cfg)
            ]
            if i == len(setting['stages']) - 1:
                stage.append(
                    TransformerEncoderBlock(out_ch, **(attention_cfg or {}))
                    if use_attention else nn.Identity())
            self.add_module(f'stage{i + 1}', nn.Sequential(*stage))
            self.layers.append(f'stage{i + 1}')
            all_channels.append(out_ch)
            channels = out_ch

        all_strides = [2**(i + 1) for i in range(num_outputs)]
        self.out_channels: List[int] = [all_channels[i] for i in self.out_indices]
        self.strides: List[int] = [all_strides[i] for i in self.out_indices]
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        """Put the stem and stages 1..frozen_stages in eval mode and stop their gradients."""
        for name in self.layers[:self.frozen_stages + 1]:
            layer = getattr(self, name)
            layer.eval()
            for param in layer.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'YOLOv7Backbone':
        """Set the train mode, keeping frozen stages and (with ``norm_eval``) BNs in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor) -> tuple:
        """(B, in_channels, H, W), H and W multiples of 32 -> tuple of the ``out_indices`` maps,
        the i-th (B, out_channels[i], H / strides[i], W / strides[i])."""
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
