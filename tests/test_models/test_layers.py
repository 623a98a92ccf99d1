"""Tests of turtle_plugin.models.layers: the YOLOv7 conv, ELAN, MP, SPPCSPC, RepConv, fusion and
attention blocks.

Parameter counts are derived by hand: a bias-free k x k conv from c_in to c_out followed by a BN
holds ``k * k * c_in * c_out + 2 * c_out`` parameters (BN weight and bias).
"""
import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS as MMDET_MODELS
from mmpose.registry import MODELS as MMPOSE_MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from turtle_plugin.models.layers import (ELANBlock, MaxPoolAndStrideConvBlock, RepConv,
                                         SPPCSPCBlock, SPPCSPCTinyBlock, TransformerEncoderBlock,
                                         build_conv, build_downsample, fuse_conv_bn,
                                         sincos_position_embedding_2d)


def conv_params(c_in: int, c_out: int, k: int) -> int:
    """Parameters of a bias-free k x k conv + BN."""
    return k * k * c_in * c_out + 2 * c_out


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


def capture_input(module: nn.Module) -> dict:
    """Record the first positional input of ``module`` at each forward under key 'x'."""
    store = {}
    module.register_forward_pre_hook(lambda mod, args: store.__setitem__('x', args[0].clone()))
    return store


class TestBuildConv:

    def test_same_padding_bn_defaults_and_stride(self):
        conv = build_conv(4, 8, 3)
        assert conv.conv.bias is None
        assert conv.bn.eps == 1e-3 and conv.bn.momentum == 0.03
        assert isinstance(conv.activate, nn.SiLU)
        assert conv(torch.randn(2, 4, 10, 12)).shape == (2, 8, 10, 12)
        assert build_conv(4, 8, 3, stride=2)(torch.randn(1, 4, 10, 12)).shape == (1, 8, 5, 6)
        assert num_params(conv) == conv_params(4, 8, 3)

    def test_leaky_relu(self):
        conv = build_conv(4, 8, 1, act_cfg=dict(type='LeakyReLU', negative_slope=0.1))
        assert isinstance(conv.activate, nn.LeakyReLU)
        assert conv.activate.negative_slope == 0.1

    def test_depthwise_separable(self):
        conv = build_conv(16, 32, 3, use_depthwise=True)
        assert conv.depthwise_conv.conv.groups == 16
        # depthwise 3x3 (9 * 16) + BN(16), pointwise 1x1 (16 * 32) + BN(32)
        assert num_params(conv) == 9 * 16 + 2 * 16 + 16 * 32 + 2 * 32
        assert conv(torch.randn(1, 16, 8, 8)).shape == (1, 32, 8, 8)

    def test_even_kernel_rejected(self):
        with pytest.raises(ValueError, match='odd kernel_size'):
            build_conv(4, 8, 2)


class TestELANBlock:

    def test_backbone_elan_params_and_shape(self):
        # yolov7.yaml layers 4-11: 1x1 128->64 twice, four 3x3 64->64, 1x1 256->256.
        block = ELANBlock(128, 256, mid_channels=64, block_channels=64, num_blocks=2,
                          num_convs_in_block=2)
        expected = 2 * conv_params(128, 64, 1) + 4 * conv_params(64, 64, 3) + conv_params(
            256, 256, 1)
        assert num_params(block) == expected == 230656
        assert block(torch.randn(2, 128, 16, 16)).shape == (2, 256, 16, 16)

    def test_elan_w_params_and_concat_width(self):
        # yolov7.yaml layers 56-63: 1x1 512->256 twice, 3x3 256->128, three 3x3 128->128,
        # concat of 2 * 256 + 4 * 128 = 1024 channels, 1x1 1024->256.
        block = ELANBlock(512, 256, mid_channels=256, block_channels=128, num_blocks=4,
                          num_convs_in_block=1)
        assert block.final_conv.conv.in_channels == 1024
        expected = (2 * conv_params(512, 256, 1) + conv_params(256, 128, 3) +
                    3 * conv_params(128, 128, 3) + conv_params(1024, 256, 1))
        assert num_params(block) == expected
        assert block(torch.randn(1, 512, 4, 4)).shape == (1, 256, 4, 4)

    def test_concat_order_is_newest_first(self):
        block = ELANBlock(8, 8, mid_channels=4, block_channels=6, num_blocks=2,
                          num_convs_in_block=2).eval()
        fused_in = capture_input(block.final_conv)
        x = torch.randn(1, 8, 6, 6)
        with torch.no_grad():
            block(x)
            main = block.main_conv(x)
            stack1 = block.blocks[0](main)
            stack2 = block.blocks[1](stack1)
            expected = torch.cat([stack2, stack1, main, block.short_conv(x)], dim=1)
        torch.testing.assert_close(fused_in['x'], expected)

    def test_depthwise_swaps_only_3x3(self):
        dense = ELANBlock(32, 32, 16, 16, num_blocks=2, num_convs_in_block=1)
        light = ELANBlock(32, 32, 16, 16, num_blocks=2, num_convs_in_block=1, use_depthwise=True)
        # Each 3x3 16->16: 9*16*16 + 2*16 becomes 9*16 + 2*16 + 16*16 + 2*16, i.e. 8c^2 - 11c.
        assert num_params(dense) - num_params(light) == 2 * (8 * 16 * 16 - 11 * 16)
        assert light.short_conv.conv.kernel_size == (1, 1)

    def test_needs_a_block(self):
        with pytest.raises(ValueError, match='at least one stack'):
            ELANBlock(8, 8, 4, 4, num_blocks=0)


class TestDownsample:

    def test_mp_block(self):
        block = MaxPoolAndStrideConvBlock(16, 32).eval()
        x = torch.randn(2, 16, 8, 8)
        with torch.no_grad():
            out = block(x)
            # [stride-conv branch, max-pool branch], each 16 channels, the original order.
            torch.testing.assert_close(out[:, :16], block.stride_conv_branch(x))
            torch.testing.assert_close(out[:, 16:], block.maxpool_branch(x))
        assert out.shape == (2, 32, 4, 4)
        # yolov7.yaml layers 12-16 with 256 channels: 1x1 256->128 twice, 3x3 s2 128->128.
        assert num_params(MaxPoolAndStrideConvBlock(256, 256)) == 2 * conv_params(
            256, 128, 1) + conv_params(128, 128, 3) == 213760

    def test_mp_block_odd_out_channels(self):
        with pytest.raises(ValueError, match='even'):
            MaxPoolAndStrideConvBlock(16, 31)

    def test_build_downsample(self):
        x = torch.randn(1, 8, 8, 8)
        assert build_downsample('conv', 8, 16)(x).shape == (1, 16, 4, 4)
        assert build_downsample('mp', 8, 16)(x).shape == (1, 16, 4, 4)
        pool = build_downsample('maxpool', 8, 8)
        assert num_params(pool) == 0 and pool(x).shape == (1, 8, 4, 4)
        with pytest.raises(ValueError, match='keeps the channels'):
            build_downsample('maxpool', 8, 16)
        with pytest.raises(ValueError, match='unknown downsample_type'):
            build_downsample('avgpool', 8, 8)


class TestSPPCSPC:

    def test_params_and_shape(self):
        block = SPPCSPCBlock(64, 32)  # hidden = 2 * 32 * 0.5 = 32
        expected = (2 * conv_params(64, 32, 1) + 2 * conv_params(32, 32, 3) +
                    conv_params(32, 32, 1) + conv_params(4 * 32, 32, 1) + conv_params(64, 32, 1))
        assert num_params(block) == expected
        assert block(torch.randn(2, 64, 8, 8)).shape == (2, 32, 8, 8)

    def test_pool_concat_order(self):
        block = SPPCSPCBlock(16, 8).eval()
        pooled = capture_input(block.fuse_convs)
        x = torch.randn(1, 16, 13, 13)
        with torch.no_grad():
            block(x)
            main = block.main_convs(x)
        pools = [nn.functional.max_pool2d(main, k, 1, k // 2) for k in (5, 9, 13)]
        torch.testing.assert_close(pooled['x'], torch.cat([main] + pools, dim=1))

    def test_tiny_params_shape_and_pool_order(self):
        block = SPPCSPCTinyBlock(64, 32).eval()
        # yolov7-tiny.yaml layers 29-37: 1x1 twice from the input, 1x1 on the 4 pooled maps,
        # 1x1 on the [fused, short] concat.
        expected = 2 * conv_params(64, 32, 1) + conv_params(128, 32, 1) + conv_params(64, 32, 1)
        assert num_params(block) == expected
        assert num_params(SPPCSPCTinyBlock(512, 256)) == 131584 * 2 + 262656 + 131584
        pooled = capture_input(block.fuse_conv)
        x = torch.randn(1, 64, 8, 8)
        with torch.no_grad():
            assert block(x).shape == (1, 32, 8, 8)
            main = block.main_conv(x)
        pools = [nn.functional.max_pool2d(main, k, 1, k // 2) for k in (13, 9, 5)]
        torch.testing.assert_close(pooled['x'], torch.cat(pools + [main], dim=1))

    def test_even_pool_rejected(self):
        with pytest.raises(ValueError, match='odd kernel_sizes'):
            SPPCSPCBlock(8, 8, kernel_sizes=(4, 9))


class TestRepConv:

    @pytest.mark.parametrize('c_in,c_out,stride,identity', [(8, 16, 1, False), (16, 16, 1, True),
                                                            (16, 16, 2, False)])
    def test_switch_to_deploy_equal_output(self, c_in, c_out, stride, identity):
        torch.manual_seed(0)
        block = RepConv(c_in, c_out, stride=stride)
        assert (block.rbr_identity is not None) == identity
        randomize_bn(block)
        block.eval()
        x = torch.randn(2, c_in, 12, 12)
        with torch.no_grad():
            expected = block(x)
            block.switch_to_deploy()
            block.switch_to_deploy()  # idempotent
            out = block(x)
        assert block.deploy and not hasattr(block, 'rbr_dense') and not hasattr(block, 'rbr_1x1')
        assert num_params(block) == 9 * c_in * c_out + c_out
        assert out.shape == (2, c_out, 12 // stride, 12 // stride)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())

    def test_training_form_params(self):
        # 3x3 + BN, 1x1 + BN, identity BN over the 16 input channels.
        assert num_params(RepConv(16, 16)) == conv_params(16, 16, 3) + conv_params(16, 16, 1) + 32
        # yolov7.yaml layer 102: RepConv 128 -> 256 without identity branch.
        assert num_params(RepConv(128, 256)) == 328704

    def test_deploy_construction_matches_switched_keys(self):
        switched = RepConv(8, 16)
        switched.switch_to_deploy()
        built = RepConv(8, 16, deploy=True)
        assert set(built.state_dict()) == set(switched.state_dict()) == {
            'rbr_reparam.weight', 'rbr_reparam.bias'
        }
        built.load_state_dict(switched.state_dict())


class TestFuseConvBN:

    def test_fused_model_has_no_bn_and_same_output(self):
        torch.manual_seed(0)
        model = nn.Sequential(
            build_conv(3, 16, 3),
            ELANBlock(16, 32, 8, 8, num_blocks=2, num_convs_in_block=2, use_depthwise=True),
            MaxPoolAndStrideConvBlock(32, 32), SPPCSPCBlock(32, 32), RepConv(32, 32))
        randomize_bn(model)
        model.eval()
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            expected = model(x)
            fused = fuse_conv_bn(model)
            out = fused(x)
        assert not any(isinstance(m, _BatchNorm) for m in fused.modules())
        assert fused[-1].deploy
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())


class TestTransformerEncoderBlock:

    def test_shape_and_gradient(self):
        block = TransformerEncoderBlock(32, num_heads=4)
        x = torch.randn(2, 32, 4, 5, requires_grad=True)
        out = block(x)
        assert out.shape == x.shape
        out.sum().backward()
        assert x.grad is not None and block.encoder.layers[0].linear1.weight.grad is not None

    def test_params(self):
        # Per layer: in-projection 3C^2 + 3C, out-projection C^2 + C, MLP C->2C->C with biases
        # 4C^2 + 3C, two LayerNorms 4C: 8C^2 + 11C.
        c = 32
        assert num_params(TransformerEncoderBlock(c, num_heads=4)) == 8 * c * c + 11 * c
        assert num_params(TransformerEncoderBlock(c, num_heads=4,
                                                  num_layers=2)) == 2 * (8 * c * c + 11 * c)

    def test_position_embedding(self):
        emb = sincos_position_embedding_2d(3, 4, 8)
        assert emb.shape == (12, 8)
        # At (y, x) = (0, 0): sin terms 0, cos terms 1.
        torch.testing.assert_close(emb[0], torch.tensor([0., 0., 1., 1., 0., 0., 1., 1.]))
        # Position (y=1, x=2) is row 1 * 4 + 2; its lowest x frequency is 1, so sin(2).
        assert emb[6, 0].item() == pytest.approx(torch.sin(torch.tensor(2.)).item())
        assert emb[6, 4].item() == pytest.approx(torch.sin(torch.tensor(1.)).item())

    def test_bad_sizes(self):
        with pytest.raises(ValueError, match='not divisible by num_heads'):
            TransformerEncoderBlock(30, num_heads=4)
        with pytest.raises(ValueError, match='divisible by 4'):
            TransformerEncoderBlock(6, num_heads=3)


@pytest.mark.parametrize('registry', [MMDET_MODELS, MMPOSE_MODELS], ids=['mmdet', 'mmpose'])
@pytest.mark.parametrize('cfg,in_channels,out_channels', [
    (dict(type='ELANBlock', in_channels=8, out_channels=16, mid_channels=4, block_channels=4), 8,
     16),
    (dict(type='MaxPoolAndStrideConvBlock', in_channels=8, out_channels=16), 8, 16),
    (dict(type='SPPCSPCBlock', in_channels=8, out_channels=16), 8, 16),
    (dict(type='SPPCSPCTinyBlock', in_channels=8, out_channels=16), 8, 16),
    (dict(type='RepConv', in_channels=8, out_channels=16), 8, 16),
    (dict(type='TransformerEncoderBlock', channels=8, num_heads=2), 8, 8),
])
def test_build_from_registry(registry, cfg, in_channels, out_channels):
    layer = registry.build(cfg)
    out = layer(torch.randn(1, in_channels, 8, 8))
    assert out.shape[:2] == (1, out_channels)
