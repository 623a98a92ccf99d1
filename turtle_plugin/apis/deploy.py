"""Deploy form of a YOLOv7 model and the graph that ONNX export traces.

:func:`to_deploy` turns a trained model into its inference form, as the original YOLOv7's
``Model.fuse()``: every ``RepConv`` becomes one 3x3 conv, every BatchNorm is folded into the conv
before it (:func:`turtle_plugin.models.layers.fuse_conv_bn`), and the head's implicit layers
(``ImplicitA`` before and ``ImplicitM`` after each 1x1 detection conv, YOLOR) are folded into
that conv. Outputs stay equal up to float rounding.

:class:`YOLOv7DeployGraph` wraps a model into the graph ``tools/deploy/export_onnx.py`` exports:
preprocessing (channel order, mean/std) + backbone + neck + head + decoding, ending *before*
score filtering and NMS, which are left to the application (their output size depends on the
data, and every runtime has its own NMS).
"""
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from turtle_plugin.models.heads import YOLOv7HeadModule
from turtle_plugin.models.layers import fuse_conv_bn

__all__ = ['fuse_implicit', 'to_deploy', 'model_head', 'YOLOv7DeployGraph']


@torch.no_grad()
def fuse_implicit(head_module: YOLOv7HeadModule) -> YOLOv7HeadModule:
    """Fold ``ImplicitA`` and ``ImplicitM`` into the 1x1 detection convs, in place.

    With ``a`` the additive and ``m`` the multiplicative implicit vector of a level, the level
    computes ``m * (W (x + a) + b) = (m W) x + m (W a + b)``: a conv with weight ``m W`` and bias
    ``m (W a + b)``. (Exact because the conv is 1x1: no padding sees ``x + a``'s border.) The
    implicit layers become ``nn.Identity``; calling it again changes nothing.

    Args:
        head_module (YOLOv7HeadModule): the head's layers.

    Returns:
        YOLOv7HeadModule: the same module.
    """
    for level, conv in enumerate(head_module.det_convs):
        implicit_a = head_module.implicit_a[level]
        implicit_m = head_module.implicit_m[level]
        if isinstance(implicit_a, nn.Identity) and isinstance(implicit_m, nn.Identity):
            continue
        if conv.kernel_size != (1, 1) or conv.bias is None:
            raise ValueError(f'fuse_implicit folds into a biased 1x1 conv, but level {level} '
                             f'has kernel {conv.kernel_size}, bias={conv.bias is not None}')
        add = implicit_a.implicit.flatten()  # (C_in,)
        mul = implicit_m.implicit.flatten()  # (C_out,)
        bias = conv.bias + conv.weight.flatten(1) @ add  # (C_out,)
        conv.weight.mul_(mul.view(-1, 1, 1, 1))
        conv.bias.copy_(bias * mul)
        head_module.implicit_a[level] = nn.Identity()
        head_module.implicit_m[level] = nn.Identity()
    return head_module


def to_deploy(model: nn.Module) -> nn.Module:
    """Switch a model to eval mode and to its deploy form, in place.

    Re-parameterises every ``RepConv``, folds every BatchNorm into its conv and folds the
    head's implicit layers into the detection convs. The model cannot be trained afterwards.

    Args:
        model (nn.Module): a ``YOLOv7Detector`` or ``BottomupPoseEstimator`` (or any module
            holding YOLOv7 layers).

    Returns:
        nn.Module: the same model, in eval mode.
    """
    model.eval()
    for module in list(model.modules()):
        if isinstance(module, YOLOv7HeadModule):
            fuse_implicit(module)
    # Fuse each child, not the model itself: MMPose's estimators have a ``switch_to_deploy``
    # of their own that calls their layers' with a ``test_cfg`` argument the plugin's layers
    # do not take, and ``fuse_conv_bn`` calls every ``switch_to_deploy`` it finds.
    for child in model.children():
        fuse_conv_bn(child)
    return model


def model_head(model: nn.Module) -> nn.Module:
    """The YOLOv7 head of a model: ``bbox_head`` (MMDetection) or ``head`` (MMPose)."""
    head = getattr(model, 'bbox_head', None) or getattr(model, 'head', None)
    if head is None or not hasattr(head, 'head_module'):
        raise ValueError(f'{type(model).__name__} has no YOLOv7 head (`bbox_head` or `head` '
                         f'with a `head_module`)')
    return head


class YOLOv7DeployGraph(nn.Module):
    """Image batch -> decoded predictions before NMS: the graph exported to ONNX.

    Input: ``(B, 3, H, W)`` float32 pixel values in 0-255, in the channel order the model's data
    preprocessor takes (BGR, as OpenCV reads images, for the plugin's configs), already
    letterboxed; ``H`` and ``W`` multiples of the largest stride (32). The graph applies the
    preprocessor's channel swap and mean/std, runs the network and decodes every anchor of
    every level (:meth:`YOLOv7HeadCore._decode_dense`, the decoding ``predict`` uses).

    Outputs, with ``N = A * sum_l H_l * W_l`` predictions (levels in stride order):

    - ``bboxes`` ``(B, N, 4)``: xyxy in input pixels;
    - ``scores`` ``(B, N, C)``: ``sigmoid(obj) * sigmoid(cls)`` per class;
    - ``keypoints`` ``(B, N, K, 2)`` and ``keypoint_scores`` ``(B, N, K)`` (visibility
      probability, or 1 when ``kpt_dim == 2``), only when the head predicts keypoints.

    Post-processing as the Python API: keep ``scores > score_thr``, class-wise NMS (IoU 0.65),
    then undo the letterbox: ``(x - pad_left) / ratio``, ``(y - pad_top) / ratio``.

    Args:
        model (nn.Module): a ``YOLOv7Detector`` or a ``BottomupPoseEstimator`` with a YOLOv7
            head, normally after :func:`to_deploy`.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        model_head(model)  # fail early on a model without a YOLOv7 head
        self.model = model
        preprocessor = model.data_preprocessor
        device = next(model.parameters()).device
        # MMEngine's ImgDataPreprocessor keeps `bgr_to_rgb or rgb_to_bgr` in _channel_conversion
        order = [2, 1, 0] if getattr(preprocessor, '_channel_conversion', False) else [0, 1, 2]
        self.register_buffer('channel_order', torch.tensor(order, device=device),
                             persistent=False)
        for name, default in (('mean', 0.), ('std', 1.)):
            value = getattr(preprocessor, name, None)
            value = torch.full((3, ), default, device=device) if value is None else value
            self.register_buffer(name, value.detach().clone().float().view(1, 3, 1, 1),
                                 persistent=False)

    @property
    def head(self) -> nn.Module:
        """The model's YOLOv7 head."""
        return model_head(self.model)

    @property
    def output_names(self) -> List[str]:
        """Names of :meth:`forward`'s outputs, in order."""
        names = ['bboxes', 'scores']
        if self.head.num_keypoints:
            names += ['keypoints', 'keypoint_scores']
        return names

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """``(B, 3, H, W)`` pixels -> the outputs named by :attr:`output_names`."""
        x = (inputs.index_select(1, self.channel_order) - self.mean) / self.std
        det_maps, kpt_maps = self.head(self.model.extract_feat(x))
        bboxes, scores, extras = self.head._decode_dense(det_maps, kpt_maps)
        return (bboxes, scores) + tuple(extras[name] for name in self.output_names[2:])

    def outputs_dict(self, inputs: Tensor) -> Dict[str, Tensor]:
        """:meth:`forward` as a ``{name: tensor}`` dict."""
        return dict(zip(self.output_names, self(inputs)))
