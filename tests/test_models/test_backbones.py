"""Tests of turtle_plugin.models.backbones.YOLOv7Backbone.

Reference parameter counts come from the original YOLOv7 repository (WongKinYiu/yolov7), built
from ``cfg/training/yolov7-tiny.yaml`` / ``yolov7.yaml`` / ``yolov7x.yaml``: each number is the sum
of the parameters of the original YAML layers named in the comment.
"""
import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS as MMDET_MODELS
from mmpose.registry import MODELS as MMPOSE_MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from turtle_plugin.models.backbones import YOLOv7Backbone
from turtle_plugin.models.layers import TransformerEncoderBlock


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Per original layer range: tiny stem 0, stage1 1-7, stage2 8-14, stage3 15-21, stage4 22-28;
# l stem 0-2, stage1 3-11, stage2 12-24, stage3 25-37, stage4 38-50;
# x stem 0-2, stage1 3-13, stage2 14-28, stage3 29-43, stage4 44-58.
ORIGINAL_STAGE_PARAMS = {
    'tiny': dict(stem=928, stage1=49664, stage2=115456, stage3=460288, stage4=1838080),
    'l': dict(stem=56480, stage1=304640, stage2=1133824, stage3=4528640, stage4=7348224),
    'x': dict(stem=87880, stage1=461248, stage2=1713344, stage3=6844800, stage4=11168000),
}
# The channels of the 3x3 convs inside each stage's ELAN (in == out for all of them).
ELAN_3X3_CHANNELS = {
    'tiny': [32] * 2 + [64] * 2 + [128] * 2 + [256] * 2,
    'l': [64] * 4 + [128] * 4 + [256] * 8,
    'x': [64] * 6 + [128] * 6 + [256] * 12,
}
EXPECTED_OUTPUTS = {
    'tiny': [128, 256, 512],
    'l': [512, 1024, 1024],
    'x': [640, 1280, 1280],
}


@pytest.mark.parametrize('arch', ['tiny', 'l', 'x'])
def test_params_match_original_per_stage(arch):
    backbone = YOLOv7Backbone(arch)
    counts = {name: num_params(getattr(backbone, name)) for name in backbone.layers}
    assert counts == ORIGINAL_STAGE_PARAMS[arch]
    assert num_params(backbone) == sum(ORIGINAL_STAGE_PARAMS[arch].values())


@pytest.mark.parametrize('arch', ['tiny', 'l', 'x'])
def test_output_shapes_channels_and_strides(arch):
    backbone = YOLOv7Backbone(arch).eval()
    assert backbone.out_channels == EXPECTED_OUTPUTS[arch]
    assert backbone.strides == [8, 16, 32]
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, c, 64 // s, 96 // s)
                                             for c, s in zip(EXPECTED_OUTPUTS[arch], [8, 16, 32])]


def test_activation_follows_arch():
    assert isinstance(YOLOv7Backbone('tiny').stem[0].activate, nn.LeakyReLU)
    assert YOLOv7Backbone('tiny').stem[0].activate.negative_slope == 0.1
    assert isinstance(YOLOv7Backbone('l').stem[0].activate, nn.SiLU)
    relu = YOLOv7Backbone('tiny', act_cfg=dict(type='ReLU'))
    assert isinstance(relu.stage4[1].final_conv.activate, nn.ReLU)
    bn = YOLOv7Backbone('tiny').stage2[1].main_conv.bn
    assert bn.eps == 1e-3 and bn.momentum == 0.03


def test_out_indices_and_in_channels():
    backbone = YOLOv7Backbone('tiny', in_channels=1, out_indices=(0, 1, 2, 3, 4)).eval()
    assert backbone.stem[0].conv.in_channels == 1
    assert backbone.out_channels == [32, 64, 128, 256, 512]
    assert backbone.strides == [2, 4, 8, 16, 32]
    with torch.no_grad():
        outs = backbone(torch.randn(2, 1, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 32, 32, 32), (2, 64, 16, 16), (2, 128, 8, 8),
                                             (2, 256, 4, 4), (2, 512, 2, 2)]
    only_p4 = YOLOv7Backbone('tiny', out_indices=(3, ))
    assert only_p4.out_channels == [256] and only_p4.strides == [16]
    assert len(only_p4(torch.randn(1, 3, 64, 64))) == 1


def test_bad_arguments():
    with pytest.raises(KeyError, match="unknown arch 'm'"):
        YOLOv7Backbone('m')
    with pytest.raises(ValueError, match='out_indices'):
        YOLOv7Backbone('tiny', out_indices=(2, 5))
    with pytest.raises(ValueError, match='frozen_stages'):
        YOLOv7Backbone('tiny', frozen_stages=5)


def test_frozen_stages():
    backbone = YOLOv7Backbone('tiny', frozen_stages=2)
    backbone.train()
    for name in ['stem', 'stage1', 'stage2']:
        layer = getattr(backbone, name)
        assert all(not p.requires_grad for p in layer.parameters())
        assert all(not m.training for m in layer.modules())
    for name in ['stage3', 'stage4']:
        layer = getattr(backbone, name)
        assert all(p.requires_grad for p in layer.parameters())
        assert all(m.training for m in layer.modules() if isinstance(m, _BatchNorm))
    # Frozen BN statistics do not move in a training forward; trainable ones do.
    frozen_bn, live_bn = backbone.stage2[1].final_conv.bn, backbone.stage3[1].final_conv.bn
    frozen_mean, live_mean = frozen_bn.running_mean.clone(), live_bn.running_mean.clone()
    backbone(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(frozen_bn.running_mean, frozen_mean)
    assert not torch.equal(live_bn.running_mean, live_mean)


def test_norm_eval():
    backbone = YOLOv7Backbone('tiny', norm_eval=True)
    backbone.train()
    bns = [m for m in backbone.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not bn.training for bn in bns)
    assert all(p.requires_grad for p in backbone.parameters())
    assert backbone.stage1[1].main_conv.conv.training
    plain = YOLOv7Backbone('tiny').train()
    assert all(m.training for m in plain.modules() if isinstance(m, _BatchNorm))


@pytest.mark.parametrize('arch', ['tiny', 'l', 'x'])
def test_depthwise_param_change(arch):
    # A 3x3 c->c conv + BN (9c^2 + 2c) becomes depthwise 3x3 + BN (9c + 2c) and pointwise
    # 1x1 + BN (c^2 + 2c): 8c^2 - 11c fewer parameters per swapped conv.
    saved = sum(8 * c * c - 11 * c for c in ELAN_3X3_CHANNELS[arch])
    dense = num_params(YOLOv7Backbone(arch))
    light = YOLOv7Backbone(arch, use_depthwise=True)
    assert dense - num_params(light) == saved
    # The stem and the down-sampling convs stay dense.
    assert light.stem[0].conv.groups == 1 and light.stage1[0].conv.groups == 1
    if arch == 'tiny':
        with torch.no_grad():
            outs = light.eval()(torch.randn(1, 3, 64, 64))
        assert [o.shape[1] for o in outs] == EXPECTED_OUTPUTS[arch]


def test_attention_off_by_default_and_runs():
    plain = YOLOv7Backbone('tiny')
    assert not any(isinstance(m, TransformerEncoderBlock) for m in plain.modules())
    assert isinstance(plain.stage4[-1], nn.Identity)
    attn = YOLOv7Backbone('tiny', use_attention=True, attention_cfg=dict(num_heads=8))
    assert isinstance(attn.stage4[-1], TransformerEncoderBlock)
    # One pre-norm encoder layer over C = 512 channels with a 2C MLP: 8C^2 + 11C parameters.
    assert num_params(attn) - num_params(plain) == 8 * 512 * 512 + 11 * 512
    outs = attn(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2)]
    outs[-1].mean().backward()
    assert attn.stage4[-1].encoder.layers[0].self_attn.in_proj_weight.grad is not None


def test_init_weights_runs():
    backbone = YOLOv7Backbone('tiny')
    backbone.init_weights()
    weight = backbone.stage1[1].main_conv.conv.weight
    # Kaiming-uniform with a = sqrt(5) (PyTorch's default) keeps |w| <= 1 / sqrt(fan_in).
    assert weight.abs().max() <= 1 / weight[0].numel()**0.5 + 1e-6


@pytest.mark.parametrize('registry', [MMDET_MODELS, MMPOSE_MODELS], ids=['mmdet', 'mmpose'])
def test_build_from_registry(registry):
    backbone = registry.build(
        dict(type='YOLOv7Backbone', arch='tiny', out_indices=(3, 4), frozen_stages=0))
    assert isinstance(backbone, YOLOv7Backbone)
    assert backbone.out_channels == [256, 512]
    assert not backbone.stem[0].conv.weight.requires_grad
