"""RepConv: the re-parameterisable 3x3 conv of RepVGG (Ding et al., CVPR 2021) that YOLOv7-l uses
for its three neck outputs ("planned re-parameterised convolution", YOLOv7 paper Sec. 4.1).

Training form: ``act(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x))`` (the identity branch only when
the input and output shapes agree). ``switch_to_deploy()`` folds the three branches into one
biased 3x3 conv: a 1x1 kernel is a 3x3 kernel that is zero off-centre, and the identity is a 1x1
kernel holding the identity matrix; each branch's BN scales its kernel by
``gamma / sqrt(var + eps)`` and adds ``beta - mean * gamma / sqrt(var + eps)`` to the bias.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmengine.model import BaseModule

from turtle_plugin.registry import MODELS
from .conv import YOLOV7_NORM_CFG, YOLOV7_SILU_CFG

__all__ = ['RepConv']


@MODELS.register_module()
class RepConv(BaseModule):
    """Re-parameterisable 3x3 conv (RepVGG block).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        stride (int): stride of the 3x3 and 1x1 branches. Defaults to 1.
        deploy (bool): build the fused single-conv form directly (to load deploy weights).
            Defaults to False.
        norm_cfg (dict): norm layer config of every branch. Defaults to BN with eps 1e-3,
            momentum 0.03.
        act_cfg (dict, optional): activation after the sum, None for none. Defaults to SiLU.
        init_cfg (dict or list[dict], optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 deploy: bool = False,
                 norm_cfg: dict = YOLOV7_NORM_CFG,
                 act_cfg: Optional[dict] = YOLOV7_SILU_CFG,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.deploy = deploy
        self.act = build_activation_layer(act_cfg) if act_cfg is not None else nn.Identity()
        if deploy:
            self.rbr_reparam = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=True)
            return
        has_identity = in_channels == out_channels and stride == 1
        self.rbr_identity = build_norm_layer(norm_cfg, in_channels)[1] if has_identity else None
        self.rbr_dense = ConvModule(
            in_channels, out_channels, 3, stride, 1, norm_cfg=norm_cfg, act_cfg=None)
        self.rbr_1x1 = ConvModule(
            in_channels, out_channels, 1, stride, 0, norm_cfg=norm_cfg, act_cfg=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H / stride, W / stride)."""
        if self.deploy:
            return self.act(self.rbr_reparam(x))
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return self.act(out)

    def get_equivalent_kernel_bias(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The 3x3 kernel (out, in, 3, 3) and bias (out,) equal to the training form in eval."""
        kernel, bias = self._fuse_bn(self.rbr_dense.conv.weight, self.rbr_dense.norm)
        kernel_1x1, bias_1x1 = self._fuse_bn(self.rbr_1x1.conv.weight, self.rbr_1x1.norm)
        kernel = kernel + F.pad(kernel_1x1, [1, 1, 1, 1])
        bias = bias + bias_1x1
        if self.rbr_identity is not None:
            eye = torch.eye(self.in_channels, dtype=kernel.dtype, device=kernel.device)
            kernel_id, bias_id = self._fuse_bn(eye[:, :, None, None], self.rbr_identity)
            kernel = kernel + F.pad(kernel_id, [1, 1, 1, 1])
            bias = bias + bias_id
        return kernel, bias

    @staticmethod
    def _fuse_bn(kernel: torch.Tensor, bn: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
        """Fold an eval-mode BN into the bias-free conv kernel that precedes it."""
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (out,)
        return kernel * scale[:, None, None, None], bn.bias - bn.running_mean * scale

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Replace the branches by one biased 3x3 conv (``rbr_reparam``); idempotent."""
        if self.deploy:
            return
        kernel, bias = self.get_equivalent_kernel_bias()
        weight = self.rbr_dense.conv.weight
        self.rbr_reparam = nn.Conv2d(
            self.in_channels, self.out_channels, 3, self.stride, 1, bias=True).to(weight)
        self.rbr_reparam.weight.copy_(kernel)
        self.rbr_reparam.bias.copy_(bias)
        del self.rbr_dense, self.rbr_1x1, self.rbr_identity
        self.deploy = True
