"""Tests of turtle_plugin.models.necks.YOLOv7PAFPN.

Reference parameter counts come from the original YOLOv7 repository (WongKinYiu/yolov7) built from
its training YAMLs with one class: the sum over the YAML ``head`` layers before ``IDetect``
(tiny 29-76, l 51-104, x 59-120). The original totals (tiny 6,014,988; l 37,196,556;
x 70,815,092) minus their IDetect heads (per level c: ImplicitA c + 1x1 conv c -> 18 with bias +
ImplicitM 18, i.e. 19c + 36; tiny 17,132, l 34,156, x 42,668) give backbone + neck.
"""
import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS as MMDET_MODELS
from mmpose.registry import MODELS as MMPOSE_MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from turtle_plugin.models.backbones import YOLOv7Backbone
from turtle_plugin.models.layers import RepConv, fuse_conv_bn
from turtle_plugin.models.necks import YOLOv7PAFPN


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomize_bn(module: nn.Module, seed: int = 0) -> None:
    """Give every BN non-trivial affine parameters and running statistics."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = torch.rand(n, generator=gen) - 0.5
            m.running_mean = torch.rand(n, generator=gen) - 0.5
            m.running_var = torch.rand(n, generator=gen) + 0.5


def head_params(channels) -> int:
    """IDetect with 3 anchors and 1 class: per level 19c + 36 parameters."""
    return sum(19 * c + 36 for c in channels)


def neck_inputs(in_channels, size=64, batch=1):
    """Random maps at strides 8, 16, 32 of a size x size image."""
    return [torch.randn(batch, c, size // s, size // s) for c, s in zip(in_channels, (8, 16, 32))]


ORIGINAL_TOTAL = {'tiny': 6014988, 'l': 37196556, 'x': 70815092}
BACKBONE_NECK_TOTAL = {'tiny': 5997856, 'l': 37162400, 'x': 70772424}
ORIGINAL_NECK = {'tiny': 3533440, 'l': 23790592, 'x': 50497152}
OUT_CHANNELS = {'tiny': [128, 256, 512], 'l': [256, 512, 1024], 'x': [320, 640, 1280]}


@pytest.mark.parametrize('arch', ['tiny', 'l', 'x'])
def test_backbone_plus_neck_params_match_original(arch):
    backbone, neck = YOLOv7Backbone(arch), YOLOv7PAFPN(arch, in_channels=None)
    assert num_params(neck) == ORIGINAL_NECK[arch]
    total = num_params(backbone) + num_params(neck)
    assert total == BACKBONE_NECK_TOTAL[arch]
    assert total + head_params(neck.out_channels) == ORIGINAL_TOTAL[arch]


def test_layer_params_match_original():
    # yolov7.yaml layer 51 (SPPCSPC 1024 -> 512) and layers 102-104 (RepConv outputs).
    neck_l = YOLOv7PAFPN('l')
    assert num_params(neck_l.reduce_layer) == 7609344
    assert num_params(neck_l.out_layers) == 6888448
    assert all(isinstance(layer, RepConv) for layer in neck_l.out_layers)
    assert isinstance(neck_l.top_down_blocks[0].final_conv.activate, nn.SiLU)
    # yolov7x.yaml layer 59 (SPPCSPC 1280 -> 640) and plain 3x3 conv outputs 118-120.
    neck_x = YOLOv7PAFPN('x')
    assert num_params(neck_x.reduce_layer) == 11887360
    assert num_params(neck_x.out_layers) == 9681280
    assert not any(isinstance(m, RepConv) for m in neck_x.modules())


@pytest.mark.parametrize('arch', ['tiny', 'l', 'x'])
def test_output_shapes(arch):
    backbone = YOLOv7Backbone(arch)
    neck = YOLOv7PAFPN(arch, in_channels=backbone.out_channels).eval()
    assert neck.out_channels == OUT_CHANNELS[arch]
    with torch.no_grad():
        outs = neck(backbone.eval()(torch.randn(1, 3, 64, 96)))
    assert [tuple(o.shape) for o in outs] == [(1, c, 64 // s, 96 // s)
                                             for c, s in zip(OUT_CHANNELS[arch], (8, 16, 32))]


def test_explicit_channels_and_activation():
    neck = YOLOv7PAFPN('tiny', in_channels=[16, 32, 64], out_channels=[8, 8, 8]).eval()
    assert neck.out_channels == [8, 8, 8]
    assert isinstance(neck.reduce_layer.final_conv.activate, nn.LeakyReLU)
    with torch.no_grad():
        outs = neck(neck_inputs([16, 32, 64], size=128, batch=2))
    assert [tuple(o.shape) for o in outs] == [(2, 8, 16, 16), (2, 8, 8, 8), (2, 8, 4, 4)]


def test_bad_arguments():
    with pytest.raises(KeyError, match="unknown arch 'w6'"):
        YOLOv7PAFPN('w6')
    with pytest.raises(ValueError, match='in_channels has 2 entries but the neck has 3 levels'):
        YOLOv7PAFPN('tiny', in_channels=[128, 256])
    with pytest.raises(ValueError, match='expects 3 input maps, got 2'):
        YOLOv7PAFPN('tiny')(neck_inputs([128, 256, 512])[:2])


def test_switch_to_deploy_l():
    torch.manual_seed(0)
    neck = YOLOv7PAFPN('l')
    randomize_bn(neck)
    neck.eval()
    inputs = neck_inputs([512, 1024, 1024])
    with torch.no_grad():
        expected = neck(inputs)
        neck.switch_to_deploy()
        outs = neck(inputs)
    assert all(layer.deploy for layer in neck.out_layers)
    # Each RepConv c -> 2c becomes one 3x3 conv with bias.
    assert num_params(neck.out_layers) == sum(9 * c * 2 * c + 2 * c for c in (128, 256, 512))
    for out, exp in zip(outs, expected):
        torch.testing.assert_close(out, exp, rtol=1e-5, atol=1e-5 * exp.abs().max())


def test_switch_to_deploy_is_noop_without_repconv():
    neck = YOLOv7PAFPN('tiny')
    before = {k: v.clone() for k, v in neck.state_dict().items()}
    neck.switch_to_deploy()
    after = neck.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize('arch', ['tiny', 'l'])
def test_fuse_conv_bn_preserves_output(arch):
    torch.manual_seed(0)
    # tiny: the whole backbone + neck; l: the neck alone (its RepConv outputs are fused too).
    if arch == 'tiny':
        model = nn.Sequential(YOLOv7Backbone(arch), YOLOv7PAFPN(arch))
        inputs = torch.randn(1, 3, 64, 64)
    else:
        model = YOLOv7PAFPN(arch)
        inputs = neck_inputs(model.in_channels)
    randomize_bn(model)
    model.eval()
    with torch.no_grad():
        expected = model(inputs)
        fuse_conv_bn(model)
        outs = model(inputs)
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    for out, exp in zip(outs, expected):
        torch.testing.assert_close(out, exp, rtol=1e-4, atol=1e-4 * exp.abs().max())


def test_depthwise_param_change_l():
    # 3x3 convs inside the l neck's ELAN-W blocks: per level, mid -> block then 3 x block ->
    # block; level P3 (128 -> 64) once, P4 (256 -> 128) twice (top-down and bottom-up),
    # P5 (512 -> 256) once. Depthwise-separable saves 8 * c_in * c_out - 11 * c_in each.
    convs = []
    for mid, block, times in ((128, 64, 1), (256, 128, 2), (512, 256, 1)):
        convs += [(mid, block)] * times + [(block, block)] * (3 * times)
    saved = sum(8 * cin * cout - 11 * cin for cin, cout in convs)
    assert num_params(YOLOv7PAFPN('l')) - num_params(YOLOv7PAFPN('l', use_depthwise=True)) == saved


@pytest.mark.parametrize('registry', [MMDET_MODELS, MMPOSE_MODELS], ids=['mmdet', 'mmpose'])
def test_build_from_registry(registry):
    neck = registry.build(dict(type='YOLOv7PAFPN', arch='tiny', out_channels=[64, 64, 64]))
    assert isinstance(neck, YOLOv7PAFPN)
    with torch.no_grad():
        outs = neck.eval()(neck_inputs([128, 256, 512]))
    assert [o.shape[1] for o in outs] == [64, 64, 64]
