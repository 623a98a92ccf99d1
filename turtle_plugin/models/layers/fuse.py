"""Turn a trained model into its inference form: re-parameterise every RepConv, then fold every
BatchNorm into the conv before it (MMCV's ``fuse_conv_bn``), so each ConvModule runs one conv.
"""
import torch.nn as nn
from mmcv.cnn import fuse_conv_bn as mmcv_fuse_conv_bn

from .rep_conv import RepConv

__all__ = ['fuse_conv_bn']


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold BN layers into the preceding convs for a deploy model, in place.

    RepConvs are re-parameterised first: folding their branch BNs separately would leave them
    unable to merge their branches.

    Args:
        model (nn.Module): the model, in eval mode (BN running statistics are used).

    Returns:
        nn.Module: the same model, fused. Outputs equal the eval-mode outputs before fusing up to
        float rounding.
    """
    # A snapshot: switching replaces the branches of the module being visited.
    for module in list(model.modules()):
        if isinstance(module, RepConv):
            module.switch_to_deploy()
    return mmcv_fuse_conv_bn(model)
