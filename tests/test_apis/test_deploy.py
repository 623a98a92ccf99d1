"""Deploy form: implicit-layer folding, RepConv + BatchNorm fusion, and the export graph.

Equivalence is checked in float64, where the folding algebra must hold to ~1e-12 (float32
rounding would hide a small algebra slip), and in float32 with the error measured against each
output's largest value (decoded coordinates cross zero, where element-wise relative errors mean
nothing).
"""
import copy

import pytest
import torch
import torch.nn as nn
from mmpose.structures import PoseDataSample

from turtle_plugin.apis import YOLOv7DeployGraph, fuse_implicit, init_model, to_deploy
from turtle_plugin.models.heads import ImplicitA, ImplicitM, YOLOv7HeadModule
from turtle_plugin.models.layers import RepConv
from .helpers import DET_L, KPT_TINY, calibrate_batchnorm


def _count(model, kind):
    return sum(isinstance(m, kind) for m in model.modules())


def test_fuse_implicit_is_exact_and_idempotent():
    torch.manual_seed(0)
    head = YOLOv7HeadModule(num_classes=2, in_channels=[8, 16], num_keypoints=3,
                            featmap_strides=[8, 16]).double()
    for module in head.modules():  # implicit values far from their 0 / 1 initialisation
        if isinstance(module, (ImplicitA, ImplicitM)):
            module.implicit.data.normal_(1.0, 0.5)
    feats = [torch.randn(2, 8, 6, 5, dtype=torch.float64),
             torch.randn(2, 16, 3, 3, dtype=torch.float64)]
    with torch.no_grad():
        ref_det, ref_kpt = head(feats)
        fuse_implicit(head)
        det, kpt = head(feats)
        fuse_implicit(head)  # nothing left to fold
        again, _ = head(feats)
    assert _count(head, (ImplicitA, ImplicitM)) == 0
    for got, want in zip(det + kpt + again, ref_det + ref_kpt + ref_det):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_fuse_implicit_needs_a_1x1_conv():
    head = YOLOv7HeadModule(num_classes=1, in_channels=[8], featmap_strides=[8])
    head.det_convs[0] = nn.Conv2d(8, 18, 3, padding=1)
    with pytest.raises(ValueError, match=r'level 0 has kernel \(3, 3\)'):
        fuse_implicit(head)


@pytest.mark.parametrize('config, size', [(KPT_TINY, 128), (DET_L, 64)])
def test_deploy_model_equals_the_training_form(config, size):
    model = calibrate_batchnorm(init_model(config), size=size).double()
    deployed = to_deploy(copy.deepcopy(model))
    assert _count(deployed, nn.modules.batchnorm._BatchNorm) == 0
    assert _count(deployed, (ImplicitA, ImplicitM)) == 0
    assert all(m.deploy for m in deployed.modules() if isinstance(m, RepConv))
    if config == DET_L:
        assert _count(deployed, RepConv) == 3  # YOLOv7-l's three neck outputs
    x = torch.rand(2, 3, size, size, dtype=torch.float64) * 255
    with torch.no_grad():
        want = YOLOv7DeployGraph(model)(x)
        got = YOLOv7DeployGraph(deployed)(x)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


def test_deploy_model_float32_error():
    model = calibrate_batchnorm(init_model(KPT_TINY), size=128)
    deployed = to_deploy(copy.deepcopy(model))
    x = torch.rand(2, 3, 128, 128) * 255
    with torch.no_grad():
        want = YOLOv7DeployGraph(model).outputs_dict(x)
        got = YOLOv7DeployGraph(deployed).outputs_dict(x)
    for name in want:
        error = (got[name] - want[name]).abs().max() / want[name].abs().max()
        assert error <= 1e-4, name


def test_graph_preprocesses_like_the_data_preprocessor():
    # the graph takes BGR 0-255 pixels; the model's preprocessor swaps to RGB and divides by
    # 255. A picture whose channels differ catches a missing or doubled swap.
    model = calibrate_batchnorm(init_model(KPT_TINY), size=64)
    gen = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (3, 64, 96), generator=gen, dtype=torch.uint8)
    img[0] = 0  # blue
    graph = YOLOv7DeployGraph(model)
    assert graph.output_names == ['bboxes', 'scores', 'keypoints', 'keypoint_scores']
    with torch.no_grad():
        got = graph.outputs_dict(img[None].float())
        data = model.data_preprocessor(dict(inputs=[img], data_samples=[PoseDataSample()]))
        head = model.head
        bboxes, scores, extras = head._decode_dense(*head(model.extract_feat(data['inputs'])))
    torch.testing.assert_close(got['bboxes'], bboxes)
    torch.testing.assert_close(got['scores'], scores)
    torch.testing.assert_close(got['keypoints'], extras['keypoints'])
    n = 3 * (8 * 12 + 4 * 6 + 2 * 3)  # anchors x cells of strides 8, 16, 32 on 64x96
    assert got['keypoints'].shape == (1, n, 6, 2)
