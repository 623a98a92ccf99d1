"""tools/model_converters/yolov7_to_turtle.py: key table, round trips, head layout, CLI.

The original YOLOv7 is not needed: state dicts in its layout are made from our models with the
converter's inverse (``to_original_state_dict``), and the original head's forward (IDetect /
IKeypoint: ``cat(im(m(ia(x))), m_kpt(x)).view(B, A, 5 + C + 3K, H, W)``) is re-stated below
from its definition to check the layout that inverse produces.
"""
import functools
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import DefaultScope

import turtle_plugin  # noqa: F401
from turtle_plugin.models.backbones import YOLOv7Backbone
from turtle_plugin.models.heads import YOLOv7HeadModule
from turtle_plugin.models.necks import YOLOv7PAFPN

from conftest import load_tool

REPO = Path(__file__).resolve().parents[2]


conv = load_tool('model_converters/yolov7_to_turtle.py')

NECK_OUT = dict(tiny=[128, 256, 512], l=[256, 512, 1024], x=[320, 640, 1280])
ANCHORS = [[(10, 13), (16, 30), (33, 23)], [(30, 61), (62, 45), (59, 119)],
           [(116, 90), (156, 198), (373, 326)]]


class Net(nn.Module):
    """backbone / neck / head.head_module, the key layout of MMPose's BottomupPoseEstimator."""

    def __init__(self, arch, num_classes=1, num_keypoints=0, kpt_head='conv',
                 in_channels=None, init=True):
        super().__init__()
        self.backbone = YOLOv7Backbone(arch) if in_channels is None else nn.Identity()
        self.neck = YOLOv7PAFPN(arch) if in_channels is None else nn.Identity()
        self.head = nn.Module()
        self.head.head_module = YOLOv7HeadModule(
            num_classes, in_channels or NECK_OUT[arch], num_keypoints=num_keypoints,
            kpt_dim=3 if num_keypoints else 2, kpt_head=kpt_head)
        if init:  # PyTorch's conv init, as configs build them (keeps activations O(1))
            for module in (self.backbone, self.neck, self.head.head_module):
                if hasattr(module, 'init_weights'):
                    module.init_weights()

    def forward(self, x):
        return self.head.head_module(self.neck(self.backbone(x)))


def _randomised(model, seed):
    """BN statistics and affines, implicit knowledge and output biases random (conv weights keep
    their fan-in scaled init, so activations stay O(1)); eval mode."""
    gen = torch.Generator().manual_seed(seed)

    def rand(shape, low, high):
        return torch.rand(shape, generator=gen) * (high - low) + low

    with torch.no_grad():
        for name, value in model.state_dict().items():
            if name.endswith(('running_var', 'implicit_m.0.implicit', 'implicit_m.1.implicit',
                              'implicit_m.2.implicit')) or (name.endswith('.weight') and
                                                             value.dim() == 1):
                value.copy_(rand(value.shape, 0.5, 1.5))  # BN var / gamma, ImplicitM
            elif name.endswith(('running_mean', '.bias', 'implicit')):
                value.copy_(rand(value.shape, -0.2, 0.2))  # BN mean / beta, biases, ImplicitA
    return model.eval()


@pytest.fixture(scope='module')
def tiny_pair():
    """YOLOv7-tiny with a 2-keypoint single-conv branch, and its original-layout state dict."""
    model = _randomised(Net('tiny', num_classes=1, num_keypoints=2), seed=0)
    return model, conv.to_original_state_dict(model.state_dict(), 'tiny', ANCHORS)


# ---------------------------------------------------------------------------- key table
def test_head_layer_index_per_arch():
    # the IDetect layer of cfg/training/yolov7-tiny.yaml, yolov7.yaml and yolov7x.yaml
    assert conv.HEAD_INDEX == dict(tiny=77, l=105, x=121)


@pytest.mark.parametrize('arch, old, new', [
    ('tiny', 'model.0.conv.weight', 'backbone.stem.0.conv.weight'),
    ('tiny', 'model.2.conv.weight', 'backbone.stage1.1.short_conv.conv.weight'),
    ('tiny', 'model.3.bn.running_mean', 'backbone.stage1.1.main_conv.bn.running_mean'),
    ('tiny', 'model.5.conv.weight', 'backbone.stage1.1.blocks.1.0.conv.weight'),
    ('tiny', 'model.7.bn.bias', 'backbone.stage1.1.final_conv.bn.bias'),
    ('tiny', 'model.23.conv.weight', 'backbone.stage4.1.short_conv.conv.weight'),
    ('tiny', 'model.29.conv.weight', 'neck.reduce_layer.short_conv.conv.weight'),
    ('tiny', 'model.30.conv.weight', 'neck.reduce_layer.main_conv.conv.weight'),
    ('tiny', 'model.35.conv.weight', 'neck.reduce_layer.fuse_conv.conv.weight'),
    ('tiny', 'model.37.conv.weight', 'neck.reduce_layer.final_conv.conv.weight'),
    ('tiny', 'model.40.conv.weight', 'neck.lateral_convs.1.conv.weight'),
    ('tiny', 'model.58.conv.weight', 'neck.downsample_layers.0.conv.weight'),
    ('tiny', 'model.76.conv.weight', 'neck.out_layers.2.conv.weight'),
    ('tiny', 'model.77.m.0.weight', 'head.head_module.det_convs.0.weight'),
    ('tiny', 'model.77.ia.1.implicit', 'head.head_module.implicit_a.1.implicit'),
    ('l', 'model.0.conv.weight', 'backbone.stem.0.conv.weight'),
    ('l', 'model.3.conv.weight', 'backbone.stage1.0.conv.weight'),
    ('l', 'model.9.conv.weight', 'backbone.stage1.1.blocks.1.1.conv.weight'),
    ('l', 'model.13.conv.weight', 'backbone.stage2.0.maxpool_branch.1.conv.weight'),
    ('l', 'model.15.conv.weight', 'backbone.stage2.0.stride_conv_branch.1.conv.weight'),
    ('l', 'model.50.conv.weight', 'backbone.stage4.1.final_conv.conv.weight'),
    ('l', 'model.51.cv1.conv.weight', 'neck.reduce_layer.main_convs.0.conv.weight'),
    ('l', 'model.51.cv2.conv.weight', 'neck.reduce_layer.short_conv.conv.weight'),
    ('l', 'model.51.cv6.bn.weight', 'neck.reduce_layer.fuse_convs.1.bn.weight'),
    ('l', 'model.52.conv.weight', 'neck.upsample_convs.1.conv.weight'),
    ('l', 'model.61.conv.weight', 'neck.top_down_blocks.1.blocks.3.0.conv.weight'),
    ('l', 'model.79.conv.weight', 'neck.downsample_layers.0.stride_conv_branch.1.conv.weight'),
    ('l', 'model.102.rbr_dense.0.weight', 'neck.out_layers.0.rbr_dense.conv.weight'),
    ('l', 'model.104.rbr_1x1.1.running_var', 'neck.out_layers.2.rbr_1x1.bn.running_var'),
    ('l', 'model.105.m.0.weight', 'head.head_module.det_convs.0.weight'),
    ('l', 'model.105.ia.0.implicit', 'head.head_module.implicit_a.0.implicit'),
    ('l', 'model.105.im.2.implicit', 'head.head_module.implicit_m.2.implicit'),
    ('x', 'model.11.conv.weight', 'backbone.stage1.1.blocks.2.1.conv.weight'),
    ('x', 'model.13.conv.weight', 'backbone.stage1.1.final_conv.conv.weight'),
    ('x', 'model.59.cv7.conv.weight', 'neck.reduce_layer.final_conv.conv.weight'),
    ('x', 'model.93.conv.weight', 'neck.bottom_up_blocks.0.short_conv.conv.weight'),
    ('x', 'model.118.conv.weight', 'neck.out_layers.0.conv.weight'),
    ('x', 'model.121.m.2.bias', 'head.head_module.det_convs.2.bias'),
])
def test_original_key_maps_to(arch, old, new):
    """A hand-read table (from the original YAMLs): the tensor under ``old`` ends up under
    ``new``, unchanged (IDetect head, so no row re-layout)."""
    original = _original_of(arch)
    assert old in original
    converted, _ = conv.convert_state_dict(original, arch)
    assert torch.equal(converted[new], original[old])


@functools.lru_cache(maxsize=None)
def _detector_of(arch):
    """A detection-only model (2 classes) and its original-layout state dict, built once per
    arch (callers copy the dict before changing it). Only exact copies are checked with it,
    so the conv weights keep their construction-time values."""
    model = _randomised(Net(arch, num_classes=2, init=False), seed=1)
    return model, conv.to_original_state_dict(model.state_dict(), arch, ANCHORS)


def _original_of(arch):
    return _detector_of(arch)[1]


@pytest.mark.parametrize('arch', ['tiny', 'l', 'x'])
def test_round_trip_is_exact_and_complete(arch):
    model, original = _detector_of(arch)
    converted, meta = conv.convert_state_dict(original, arch, scope='mmpose')
    model.load_state_dict(converted, strict=True)  # every key of our model, nothing else
    assert all(torch.equal(v, converted[k]) for k, v in model.state_dict().items())
    back = conv.to_original_state_dict(converted, arch, meta['anchors'])
    assert back.keys() == original.keys()
    assert all(torch.equal(back[k], original[k]) for k in original)
    assert meta['anchors'] == [[list(map(float, a)) for a in level] for level in ANCHORS]
    assert (meta['arch'], meta['num_classes'], meta['head_type']) == (arch, 2, 'IDetect')
    # anchors are stored divided by the strides, anchor_grid in pixels (as the original)
    head = conv.HEAD_INDEX[arch]
    assert original[f'model.{head}.anchors'][2, 2].tolist() == [373 / 32, 326 / 32]
    assert original[f'model.{head}.anchor_grid'].shape == (3, 1, 3, 1, 1, 2)


def test_arch_is_inferred_from_the_head_index():
    assert conv.convert_state_dict(_original_of('l'))[1]['arch'] == 'l'
    with pytest.raises(ValueError, match='layer 77'):
        conv.convert_state_dict(_original_of('l'), arch='tiny')


# ---------------------------------------------------------------------------- head layout
def _original_head(sd, head, feats, num_anchors=3):
    """IDetect / IKeypoint (single-conv branch) raw output per level, from the original's
    definition: ``cat(im * conv(x + ia), conv_kpt(x))`` viewed as ``(B, A, H, W, no)``."""
    outs = []
    for level, x in enumerate(feats):
        p = f'model.{head}.'
        det = F.conv2d(x + sd[f'{p}ia.{level}.implicit'], sd[f'{p}m.{level}.weight'],
                       sd[f'{p}m.{level}.bias']) * sd[f'{p}im.{level}.implicit']
        if f'{p}m_kpt.{level}.weight' in sd:
            kpt = F.conv2d(x, sd[f'{p}m_kpt.{level}.weight'], sd[f'{p}m_kpt.{level}.bias'])
            det = torch.cat([det, kpt], dim=1)
        batch, channels, height, width = det.shape
        outs.append(det.view(batch, num_anchors, channels // num_anchors, height, width)
                    .permute(0, 1, 3, 4, 2))
    return outs


def _ours_as_original(det_maps, kpt_maps, num_anchors=3):
    outs = []
    for level, det in enumerate(det_maps):
        maps = [det] + ([kpt_maps[level]] if kpt_maps else [])
        per_anchor = [m.view(m.shape[0], num_anchors, -1, *m.shape[2:]) for m in maps]
        outs.append(torch.cat(per_anchor, dim=2).permute(0, 1, 3, 4, 2))
    return outs


@pytest.mark.parametrize('num_keypoints', [0, 2])
def test_head_matches_original_definition(num_keypoints):
    """With keypoints the original's rows of anchor 0 include detection rows of anchors 1, 2
    taken from the keypoint conv (and vice versa); the conversion folds them exactly."""
    channels = [8, 16, 32]
    model = _randomised(Net('tiny', num_classes=3, num_keypoints=num_keypoints,
                            in_channels=channels), seed=2)
    feats = [torch.randn(2, c, s, s) for c, s in zip(channels, (8, 4, 2))]
    original = conv.to_original_state_dict(model.state_dict(), 'tiny', ANCHORS)
    with torch.no_grad():
        expected = _original_head(original, 77, feats)
        ours = _ours_as_original(*model.head.head_module(feats))
        converted, meta = conv.convert_state_dict(original, 'tiny',
                                                  num_keypoints=num_keypoints or None)
        model.load_state_dict(converted, strict=True)
        again = _ours_as_original(*model.head.head_module(feats))
    assert meta['num_keypoints'] == num_keypoints
    for exp, out, out_again in zip(expected, ours, again):
        assert exp.shape == (2, 3) + out.shape[2:4] + (5 + 3 + 3 * num_keypoints, )
        torch.testing.assert_close(out, exp, rtol=0, atol=1e-5)
        torch.testing.assert_close(out_again, exp, rtol=0, atol=1e-5)


def test_full_model_round_trip_with_keypoints(tiny_pair):
    model, original = tiny_pair
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    converted, meta = conv.convert_state_dict(original, num_keypoints=2)
    assert (meta['num_keypoints'], meta['kpt_dim'], meta['kpt_head']) == (2, 3, 'conv')
    fresh = Net('tiny', num_classes=1, num_keypoints=2).eval()
    fresh.load_state_dict(converted, strict=True)
    with torch.no_grad():
        for a, b in zip(sum(model(x), []), sum(fresh(x), [])):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match='predicts 2 keypoints'):
        conv.convert_state_dict(original, num_keypoints=6)


def test_plain_detect_head_becomes_identity_implicits():
    original = dict(_original_of('tiny'))
    for level in range(3):  # the deploy Detect head has no ImplicitA / ImplicitM
        del original[f'model.77.ia.{level}.implicit'], original[f'model.77.im.{level}.implicit']
    converted, meta = conv.convert_state_dict(original, scope='mmdet')
    assert meta['head_type'] == 'Detect'
    prefix = 'bbox_head.head_module.'
    assert not converted[f'{prefix}implicit_a.1.implicit'].any()
    assert (converted[f'{prefix}implicit_m.1.implicit'] == 1).all()
    assert torch.equal(converted[f'{prefix}det_convs.1.weight'], original['model.77.m.1.weight'])


def test_depthwise_keypoint_branch_is_refused():
    """YOLO-Pose's dw_conv_kpt branch splits anchors across convs that see different inputs."""
    model = Net('tiny', num_classes=1, num_keypoints=2, kpt_head='dw', in_channels=[8, 16, 32])
    with pytest.raises(ValueError, match='depthwise stack'):
        conv.to_original_state_dict(model.state_dict(), 'tiny', ANCHORS)
    original = dict(_original_of('tiny'))
    original.update({'model.77.m_kpt.0.0.conv.weight': torch.zeros(128, 1, 3, 3),
                     'model.77.m_kpt.0.11.weight': torch.zeros(18, 128, 1, 1)})
    with pytest.raises(ValueError, match='depthwise stack'):
        conv.convert_state_dict(original)


def test_unknown_and_fused_keys_are_refused():
    original = dict(_original_of('tiny'))
    with pytest.raises(ValueError, match='belong to no layer'):
        conv.convert_state_dict({**original, 'model.8.weight': torch.zeros(1)})  # a max pool
    with pytest.raises(ValueError, match='fused conv'):
        conv.convert_state_dict({**original, 'model.0.conv.bias': torch.zeros(32)})
    with pytest.raises(ValueError, match='does not know'):
        conv.convert_state_dict({**original, 'model.77.m2.0.weight': torch.zeros(1)})


# ---------------------------------------------------------------------------- host models
@pytest.mark.parametrize('scope', ['mmpose', 'mmdet'])
def test_converted_checkpoint_loads_into_host_model(scope, tiny_pair):
    """The converted keys are exactly those of MMPose's / MMDetection's model."""
    _, original = tiny_pair
    converted, _ = conv.convert_state_dict(original, scope=scope)
    head = dict(head_module=dict(type='YOLOv7HeadModule', num_classes=1,
                                 in_channels=NECK_OUT['tiny'], num_keypoints=2, kpt_dim=3),
                anchors=ANCHORS, kpt_sigmas=[0.1, 0.1])
    common = dict(backbone=dict(type='YOLOv7Backbone', arch='tiny'),
                  neck=dict(type='YOLOv7PAFPN', arch='tiny'))
    if scope == 'mmpose':
        from mmpose.registry import MODELS
        cfg = dict(type='BottomupPoseEstimator', head=dict(type='YOLOv7KptHead', **head),
                   **common)
    else:
        from mmdet.registry import MODELS
        cfg = dict(type='YOLOv7Detector', bbox_head=dict(type='YOLOv7Head', **head), **common)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg)
    model.load_state_dict(converted, strict=True)


# ---------------------------------------------------------------------------- CLI and files
def test_cli_converts_a_state_dict_file(tiny_pair, tmp_path, capsys):
    _, original = tiny_pair
    src, dst = tmp_path / 'orig.pth', tmp_path / 'converted.pth'
    torch.save({'state_dict': original}, src)
    conv.main([str(src), str(dst), '--arch', 'tiny', '--scope', 'mmdet'])
    checkpoint = torch.load(dst, weights_only=True)
    assert 'bbox_head.head_module.kpt_convs.0.0.weight' in checkpoint['state_dict']
    assert checkpoint['meta']['source'] == 'orig.pth'
    printed = capsys.readouterr().out
    assert 'anchors = [[(10, 13), (16, 30), (33, 23)], [(30, 61), (62, 45), (59, 119)], ' \
           '[(116, 90), (156, 198), (373, 326)]]' in printed
    assert 'num_keypoints=2' in printed


def test_pickled_model_needs_yolov7_root(tmp_path):
    path = tmp_path / 'official.pt'
    torch.save({'model': nn.Conv2d(1, 1, 1), 'ema': None}, path)
    with pytest.raises(ValueError, match='--yolov7-root'):
        conv.load_source_state_dict(str(path))


def test_yolov7_root_unpickles_and_cleans_up(tmp_path):
    """An official-style file (a pickled ``models.yolo.Model``, EMA preferred) loads with the
    source tree on the path, and its ``models`` package does not outlive the call."""
    root = tmp_path / 'yolov7'
    (root / 'models').mkdir(parents=True)
    (root / 'models' / '__init__.py').write_text('')
    (root / 'models' / 'yolo.py').write_text(
        'import torch.nn as nn\n\n\nclass Model(nn.Module):\n    def __init__(self, value):\n'
        '        super().__init__()\n        self.model = nn.Sequential(nn.Conv2d(1, 1, 1))\n'
        '        nn.init.constant_(self.model[0].weight, value)\n')
    path = tmp_path / 'official.pt'
    models_before = sys.modules.get('models')
    with conv._importable(str(root)):
        from models.yolo import Model
        torch.save({'model': Model(1.0).half(), 'ema': Model(2.0).half()}, path)
    assert sys.modules.get('models') is models_before
    with pytest.warns(UserWarning, match='trust'):
        state_dict = conv.load_source_state_dict(str(path), yolov7_root=str(root))
    assert state_dict['model.0.weight'].dtype == torch.float32
    assert state_dict['model.0.weight'].item() == 2.0  # the EMA
    assert sys.modules.get('models') is models_before and str(root) not in sys.path
