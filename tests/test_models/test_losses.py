"""Losses of the YOLOv7 head: hand-computed values and agreement with torchvision."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from torchvision.ops import complete_box_iou_loss, sigmoid_focal_loss

from turtle_plugin.models.losses import (KptScaledL1Loss, YOLOBCEWithLogitsLoss, YOLOCIoULoss,
                                         YOLOFocalLoss, YOLOPoseOKSLoss, bbox_ciou,
                                         weight_reduce_loss)
from turtle_plugin.registry import MODELS


@pytest.fixture(autouse=True)
def _mmdet_default_scope():
    """Build in MMDetection's scope, whatever default scope an earlier test left behind."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.mark.parametrize('name', ['YOLOCIoULoss', 'YOLOBCEWithLogitsLoss', 'YOLOFocalLoss',
                                  'YOLOPoseOKSLoss', 'KptScaledL1Loss'])
def test_losses_registered_in_both_scopes(name):
    assert name in MODELS
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmpose.registry import MODELS as MMPOSE_MODELS
    assert MMDET_MODELS.get(name) is MMPOSE_MODELS.get(name)


class TestCIoU:

    def test_same_aspect_ratio_by_hand(self):
        # IoU = 1 / (4 + 4 - 1); enclosing box 3x3 -> c^2 = 18; centres (1,1),(2,2) -> rho^2 = 2;
        # equal aspect ratios -> v = 0. CIoU = 1/7 - 2/18 = 2/63.
        pred = torch.tensor([[0., 0., 2., 2.]])
        target = torch.tensor([[1., 1., 3., 3.]])
        assert bbox_ciou(pred, target).item() == pytest.approx(2 / 63, abs=1e-6)
        loss = YOLOCIoULoss(reduction='none')(pred, target)
        assert loss.item() == pytest.approx(61 / 63, abs=1e-6)

    def test_different_aspect_ratio_by_hand(self):
        # pred 4x2 at (2,1), target 2x2 at (1,1): IoU = 4 / (8 + 4 - 4) = 0.5,
        # enclosing 4x2 -> c^2 = 20, rho^2 = 1, v = 4/pi^2 (atan(1) - atan(2))^2,
        # alpha = v / (v - IoU + 1).
        pred = torch.tensor([[0., 0., 4., 2.]])
        target = torch.tensor([[0., 0., 2., 2.]])
        v = 4 / math.pi**2 * (math.atan(1.0) - math.atan(2.0))**2
        alpha = v / (v - 0.5 + 1)
        expected = 0.5 - (1 / 20 + alpha * v)
        assert bbox_ciou(pred, target).item() == pytest.approx(expected, abs=1e-6)

    def test_matches_torchvision(self):
        gen = torch.Generator().manual_seed(0)
        xy = torch.rand(64, 2, generator=gen) * 50
        pred = torch.cat([xy, xy + 1 + torch.rand(64, 2, generator=gen) * 40], 1)
        xy = xy + torch.randn(64, 2, generator=gen) * 10
        target = torch.cat([xy, xy + 1 + torch.rand(64, 2, generator=gen) * 40], 1)
        ours = YOLOCIoULoss(reduction='none')(pred, target)
        theirs = complete_box_iou_loss(pred, target, reduction='none')
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
        assert YOLOCIoULoss()(pred, target).item() == pytest.approx(theirs.mean().item(),
                                                                    abs=1e-5)

    def test_identical_boxes_have_zero_loss(self):
        boxes = torch.tensor([[3., 4., 20., 9.], [0., 0., 1., 1.]])
        assert torch.allclose(YOLOCIoULoss(reduction='none')(boxes, boxes), torch.zeros(2),
                              atol=1e-6)

    def test_weight_and_avg_factor(self):
        pred = torch.tensor([[0., 0., 2., 2.], [0., 0., 4., 2.]])
        target = torch.tensor([[1., 1., 3., 3.], [0., 0., 2., 2.]])
        per_box = YOLOCIoULoss(reduction='none')(pred, target)
        loss = YOLOCIoULoss(loss_weight=2.0)(pred, target, weight=torch.tensor([1., 0.]),
                                            avg_factor=torch.tensor(1.))
        assert loss.item() == pytest.approx(2 * per_box[0].item(), abs=1e-6)
        # no positive at all: zero, not NaN
        empty = YOLOCIoULoss()(pred[:0], target[:0], weight=torch.ones(0),
                               avg_factor=torch.tensor(0.))
        assert empty.item() == 0.0

    def test_shape_mismatch_raises(self):
        with pytest.raises(ValueError, match='boxes'):
            bbox_ciou(torch.zeros(2, 4), torch.zeros(3, 4))


class TestBCEAndFocal:

    def test_bce_matches_torch_and_pos_weight_by_hand(self):
        pred, target = torch.randn(5, 7), torch.rand(5, 7)
        assert YOLOBCEWithLogitsLoss()(pred, target).item() == pytest.approx(
            F.binary_cross_entropy_with_logits(pred, target).item(), abs=1e-6)
        # logit 0, target 1, pos_weight 2: 2 * -log(0.5)
        loss = YOLOBCEWithLogitsLoss(pos_weight=2.0)(torch.zeros(1), torch.ones(1))
        assert loss.item() == pytest.approx(2 * math.log(2), abs=1e-6)

    def test_focal_by_hand(self):
        # logit 0, target 1: p_t = 0.5, BCE = log 2; gamma 2, alpha 0.25 -> 0.25 * 0.25 * log 2
        loss = YOLOFocalLoss(gamma=2.0, alpha=0.25)(torch.zeros(1), torch.ones(1))
        assert loss.item() == pytest.approx(0.25 * 0.25 * math.log(2), abs=1e-7)

    @pytest.mark.parametrize('gamma,alpha', [(1.5, 0.25), (2.0, 0.5), (1.0, -1.0)])
    @pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
    def test_focal_matches_torchvision(self, gamma, alpha, reduction):
        gen = torch.Generator().manual_seed(1)
        pred = torch.randn(6, 4, generator=gen) * 3
        target = (torch.rand(6, 4, generator=gen) > 0.7).float()
        ours = YOLOFocalLoss(gamma=gamma, alpha=alpha, reduction=reduction)(pred, target)
        theirs = sigmoid_focal_loss(pred, target, alpha=alpha, gamma=gamma, reduction=reduction)
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)

    def test_masked_entries_cannot_leak_nan(self):
        loss = torch.tensor([1.0, float('nan'), 3.0], requires_grad=True)
        out = weight_reduce_loss(loss, torch.tensor([1., 0., 1.]), 'mean', avg_factor=2)
        assert out.item() == 2.0
        out.backward()
        assert torch.isfinite(loss.grad).all()

    def test_bad_reduction_raises(self):
        with pytest.raises(ValueError, match='reduction'):
            weight_reduce_loss(torch.ones(2), reduction='avg')


class TestOKSLoss:

    def test_by_hand(self):
        # visible keypoint: d^2 = 3^2 + 4^2 = 25, area 100, sigma 0.5 -> 100 * 4 * 0.25 = 100:
        # 1 - exp(-0.25). The invisible keypoint is far off and must not count.
        pred = torch.tensor([[[10., 10.], [500., 500.]]])
        target = torch.tensor([[[13., 14.], [0., 0.]]])
        visible = torch.tensor([[1., 0.]])
        loss = YOLOPoseOKSLoss()(pred, target, visible, torch.tensor([100.]),
                                 torch.tensor([0.5, 0.5]))
        assert loss.item() == pytest.approx(1 - math.exp(-0.25), abs=1e-6)

    def test_matches_yolo_pose_formula(self):
        # YOLO-Pose: kpt_loss_factor * mean((1 - exp(-d / (s * 4 sigma^2 + 1e-9))) * mask)
        gen = torch.Generator().manual_seed(2)
        pred = torch.rand(5, 6, 2, generator=gen) * 20
        target = torch.rand(5, 6, 2, generator=gen) * 20
        mask = torch.rand(5, 6, generator=gen) > 0.3
        areas = torch.rand(5, generator=gen) * 300 + 10
        sigmas = torch.rand(6, generator=gen) * 0.1 + 0.02
        d = ((pred - target)**2).sum(-1)
        factor = mask.numel() / mask.sum()
        expected = factor * ((1 - torch.exp(-d / (areas[:, None] * 4 * sigmas**2 + 1e-9))) *
                             mask).mean()
        loss = YOLOPoseOKSLoss()(pred, target, mask.float(), areas, sigmas)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-6)

    def test_no_visible_keypoint_gives_zero_and_finite_grad(self):
        pred = torch.randn(3, 4, 2, requires_grad=True)
        loss = YOLOPoseOKSLoss()(pred, torch.zeros(3, 4, 2), torch.zeros(3, 4), torch.zeros(3),
                                 torch.full((4, ), 0.05))
        assert loss.item() == 0.0
        loss.backward()
        assert torch.isfinite(pred.grad).all()

    def test_instance_weight_drops_instances(self):
        pred = torch.tensor([[[0., 0.]], [[9., 9.]]])
        target = torch.zeros(2, 1, 2)
        loss = YOLOPoseOKSLoss()(pred, target, torch.ones(2, 1), torch.tensor([10., 10.]),
                                 torch.tensor([0.1]), weight=torch.tensor([1., 0.]))
        assert loss.item() == 0.0  # only the perfect prediction is counted

    def test_sigma_count_mismatch_raises(self):
        with pytest.raises(ValueError, match='3 keypoint sigmas for predictions with 4'):
            YOLOPoseOKSLoss()(torch.zeros(1, 4, 2), torch.zeros(1, 4, 2), torch.ones(1, 4),
                              torch.ones(1), torch.ones(3))


class TestKptScaledL1Loss:

    def test_by_hand(self):
        # visible keypoints: |3| + |4| = 7 and |0| + |2| = 2 over sqrt(100) = 10 -> mean 0.45;
        # the invisible keypoint is far off and must not count
        pred = torch.tensor([[[10., 10.], [500., 500.], [0., 2.]]])
        target = torch.tensor([[[13., 14.], [0., 0.], [0., 0.]]])
        visible = torch.tensor([[1., 0., 2.]])
        loss = KptScaledL1Loss(loss_weight=2.0)(pred, target, visible, torch.tensor([100.]))
        assert loss.item() == pytest.approx(2.0 * (0.7 + 0.2) / 2, abs=1e-6)

    def test_gradient_does_not_vanish_far_away(self):
        """Where 1 - OKS is flat (d = 10 sqrt(s)), the L1 term's gradient is what it is near
        the target: 1 / sqrt(area) per coordinate."""
        area, sigma = torch.tensor([400.]), torch.tensor([0.5])  # s = area * 4 sigma^2 = 400
        target = torch.zeros(1, 1, 2)
        for dist in (1.0, 200.0):
            pred = torch.tensor([[[dist, 0.]]], requires_grad=True)
            KptScaledL1Loss()(pred, target, torch.ones(1, 1), area).backward()
            assert pred.grad[0, 0, 0].item() == pytest.approx(1 / 20)
        far = torch.tensor([[[200., 0.]]], requires_grad=True)
        YOLOPoseOKSLoss()(far, target, torch.ones(1, 1), area, sigma).backward()
        assert abs(far.grad[0, 0, 0].item()) < 1e-20  # exp(-100): nothing left to follow

    def test_weight_and_empty(self):
        pred = torch.tensor([[[0., 0.]], [[9., 9.]]], requires_grad=True)
        loss = KptScaledL1Loss()(pred, torch.zeros(2, 1, 2), torch.ones(2, 1),
                                 torch.tensor([9., 9.]), weight=torch.tensor([1., 0.]))
        assert loss.item() == 0.0  # only the perfect prediction is counted
        empty = KptScaledL1Loss()(pred, torch.zeros(2, 1, 2), torch.zeros(2, 1),
                                  torch.zeros(2))
        assert empty.item() == 0.0
        empty.backward()
        assert torch.isfinite(pred.grad).all()
