"""Layers of the YOLOv7 head (YOLOv7's ``IDetect``, YOLO-Pose's ``IKeypoint``).

Per level: ``ImplicitA -> 1x1 conv -> ImplicitM`` predicts, for each of ``A`` anchors,
``(x, y, w, h, obj, cls_1..C)`` (Wang et al., "YOLOR", 2021, implicit knowledge); a separate
keypoint branch predicts ``K * kpt_dim`` raw values per anchor (Maji et al., "YOLO-Pose", 2022),
either one 1x1 conv or YOLO-Pose's deeper depthwise stack. The module returns raw maps; decoding,
assignment and losses live in :class:`~turtle_plugin.models.heads.YOLOv7HeadCore`.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from turtle_plugin.registry import MODELS

__all__ = ['ImplicitA', 'ImplicitM', 'YOLOv7HeadModule']


class ImplicitA(nn.Module):
    """Learned additive implicit knowledge: ``x + a`` with ``a`` of shape ``(1, C, 1, 1)``.

    Args:
        channels (int): number of channels ``C``.
        std (float): standard deviation of the N(0, std) initialisation.
    """

    def __init__(self, channels: int, std: float = 0.02):
        super().__init__()
        self.std = std
        self.implicit = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.implicit, mean=0.0, std=self.std)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.implicit


class ImplicitM(nn.Module):
    """Learned multiplicative implicit knowledge: ``x * m`` with ``m`` of shape ``(1, C, 1, 1)``.

    Args:
        channels (int): number of channels ``C``.
        std (float): standard deviation of the N(1, std) initialisation.
    """

    def __init__(self, channels: int, std: float = 0.02):
        super().__init__()
        self.std = std
        self.implicit = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.implicit, mean=1.0, std=self.std)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.implicit


@MODELS.register_module()
class YOLOv7HeadModule(BaseModule):
    """Convolutions of the YOLOv7 detection head with an optional keypoint branch.

    Args:
        num_classes (int): number of object classes ``C``.
        in_channels (Sequence[int]): channels of each input level (the neck's outputs).
        num_anchors (int): anchors per level ``A``.
        num_keypoints (int): keypoints per instance ``K``; 0 builds no keypoint branch.
        kpt_dim (int): values per keypoint: 2 (x, y) or 3 (x, y, visibility logit).
        kpt_head (str): keypoint branch per level, a row of ``kpt_head_settings``: ``'conv'``
            (one 1x1 conv) or ``'dw'`` (YOLO-Pose's ``dw_conv_kpt``: depthwise 3x3 and 1x1
            conv-BN-act blocks before the 1x1 output conv).
        kpt_prior (str): where the keypoint output conv's bias puts every keypoint before
            training (decoded ``(2 t - 0.5 + (i, j)) * s``): ``'zero'`` (bias 0: at
            ``(i - 0.5, j - 0.5) * s``, the diagonal neighbour's centre, as the original's
            keypoint conv starts on average) or ``'centre'`` (bias 0.5 on ``x, y``: at the cell's
            centre ``(i + 0.5, j + 0.5) * s``, where the box branch starts its centre). The
            visibility logit's bias is 0 either way.
        featmap_strides (Sequence[int]): stride of each level in input pixels.
        img_size (int): training image side the objectness prior assumes (8 objects per
            image; YOLOv7 uses 640). A head builds its module with its own ``img_size``.
        norm_cfg (dict): norm layer of the ``'dw'`` keypoint blocks.
        act_cfg (dict): activation of the ``'dw'`` keypoint blocks.
        init_cfg (dict | list[dict], optional): MMEngine initialisation config.
    """

    # keypoint branch per level: the conv-BN-act blocks before the final 1x1 output conv
    kpt_head_settings = {
        'conv': [],
        'dw': ['dw', 'pw'] * 5 + ['dw'],
    }

    def __init__(self,
                 num_classes: int,
                 in_channels: Sequence[int],
                 num_anchors: int = 3,
                 num_keypoints: int = 0,
                 kpt_dim: int = 2,
                 kpt_head: str = 'conv',
                 kpt_prior: str = 'zero',
                 featmap_strides: Sequence[int] = (8, 16, 32),
                 img_size: int = 640,
                 norm_cfg: dict = dict(type='BN', momentum=0.03, eps=0.001),
                 act_cfg: dict = dict(type='SiLU', inplace=True),
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(featmap_strides):
            raise ValueError(f'{len(in_channels)} in_channels but {len(featmap_strides)} '
                             f'featmap_strides: give one stride per input level')
        if kpt_dim not in (2, 3):
            raise ValueError(f'kpt_dim must be 2 (x, y) or 3 (x, y, visibility), got {kpt_dim}')
        if kpt_head not in self.kpt_head_settings:
            raise ValueError(f'kpt_head must be one of {sorted(self.kpt_head_settings)}, '
                             f'got {kpt_head!r}')
        if kpt_prior not in ('zero', 'centre'):
            raise ValueError(f"kpt_prior must be 'zero' or 'centre', got {kpt_prior!r}")
        if num_classes < 1 or num_anchors < 1 or num_keypoints < 0:
            raise ValueError(f'need num_classes >= 1, num_anchors >= 1, num_keypoints >= 0; got '
                             f'{num_classes}, {num_anchors}, {num_keypoints}')
        self.num_classes = num_classes
        self.in_channels = list(in_channels)
        self.num_anchors = num_anchors
        self.num_keypoints = num_keypoints
        self.kpt_dim = kpt_dim
        self.kpt_prior = kpt_prior
        self.featmap_strides = list(featmap_strides)
        self.img_size = img_size
        self.num_levels = len(in_channels)
        self.num_det_outputs = 5 + num_classes  # per anchor

        det_out = num_anchors * self.num_det_outputs
        self.implicit_a = nn.ModuleList(ImplicitA(c) for c in in_channels)
        self.det_convs = nn.ModuleList(nn.Conv2d(c, det_out, 1) for c in in_channels)
        self.implicit_m = nn.ModuleList(ImplicitM(det_out) for _ in in_channels)
        kpt_out = num_anchors * num_keypoints * kpt_dim
        self.kpt_convs = nn.ModuleList(
            self._build_kpt_branch(c, kpt_out, self.kpt_head_settings[kpt_head], norm_cfg,
                                   act_cfg) for c in in_channels if num_keypoints > 0)

    @staticmethod
    def _build_kpt_branch(channels: int, out_channels: int, blocks: List[str], norm_cfg: dict,
                          act_cfg: dict) -> nn.Sequential:
        layers = [
            ConvModule(channels, channels, 3 if kind == 'dw' else 1,
                       padding=1 if kind == 'dw' else 0,
                       groups=channels if kind == 'dw' else 1,
                       norm_cfg=norm_cfg, act_cfg=act_cfg) for kind in blocks
        ]
        return nn.Sequential(*layers, nn.Conv2d(channels, out_channels, 1))

    def init_weights(self) -> None:
        """YOLOv7's priors on the detection conv, ``kpt_prior`` on the keypoint output.

        Detection bias (per anchor): 0 for ``x, y, w, h``; ``log(8 / (img_size / stride)^2)``
        for objectness (8 objects per image); ``log(0.6 / (C - 0.99))`` for each class. The
        keypoint output conv gets N(0, 0.01) weights and a bias of 0 (``'zero'``) or of 0.5 on
        every ``x, y`` channel (``'centre'``), so a keypoint starts near its cell and no
        keypoint channel starts with an objectness- or class-sized offset. Setting (not adding
        to) the biases makes this idempotent.
        """
        super().init_weights()
        for conv, stride in zip(self.det_convs, self.featmap_strides):
            bias = torch.zeros(self.num_anchors, self.num_det_outputs)
            bias[:, 4] = math.log(8 / (self.img_size / stride)**2)
            bias[:, 5:] = math.log(0.6 / (self.num_classes - 0.99))
            with torch.no_grad():
                conv.bias.copy_(bias.view(-1))
        for branch in self.kpt_convs:
            nn.init.normal_(branch[-1].weight, mean=0.0, std=0.01)
            bias = torch.zeros(self.num_anchors, self.num_keypoints, self.kpt_dim)
            if self.kpt_prior == 'centre':
                bias[..., :2] = 0.5
            with torch.no_grad():
                branch[-1].bias.copy_(bias.view(-1))

    def forward(self, feats: Sequence[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Raw maps of every level.

        Args:
            feats (Sequence[Tensor]): ``(B, in_channels[i], H_i, W_i)`` per level.

        Returns:
            tuple[list[Tensor], list[Tensor]]: detection maps ``(B, A * (5 + C), H_i, W_i)``
            and keypoint maps ``(B, A * K * kpt_dim, H_i, W_i)`` (an empty list when
            ``num_keypoints == 0``).
        """
        if len(feats) != self.num_levels:
            raise ValueError(f'YOLOv7HeadModule has {self.num_levels} levels but got '
                             f'{len(feats)} feature maps')
        det_maps = [
            implicit_m(conv(implicit_a(x)))
            for x, implicit_a, conv, implicit_m in zip(feats, self.implicit_a, self.det_convs,
                                                       self.implicit_m)
        ]
        kpt_maps = [branch(x) for x, branch in zip(feats, self.kpt_convs)]
        return det_maps, kpt_maps
