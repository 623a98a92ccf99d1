"""YOLOv7HeadModule (layers) and the YOLOv7 head logic (decoding, losses, post-processing)."""
import math
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from mmengine.registry import DefaultScope

from turtle_plugin.models.heads import (YOLOV7_P5_ANCHORS, KptBranch, YOLOv7Head,
                                        YOLOv7HeadCore, YOLOv7HeadModule, YOLOv7KptHead)
from turtle_plugin.models.task_modules import filter_and_nms
from turtle_plugin.registry import MODELS


@pytest.fixture(autouse=True)
def _mmdet_default_scope():
    """Build in MMDetection's scope, whatever default scope an earlier test left behind."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield

NECK_CHANNELS = dict(tiny=[128, 256, 512], l=[256, 512, 1024], x=[320, 640, 1280])
STRIDES = (8, 16, 32)
# YOLOv7's P5 anchors / 8, for the 64x64 inputs of these tests
SMALL_ANCHORS = [[(w / 8, h / 8) for w, h in level] for level in YOLOV7_P5_ANCHORS]


def _module(**kwargs):
    cfg = dict(num_classes=1, in_channels=NECK_CHANNELS['l'])
    cfg.update(kwargs)
    return YOLOv7HeadModule(**cfg)


def _head(num_classes=3, num_keypoints=4, kpt_dim=3, kpt_head='conv', img_size=64,
          in_channels=(8, 16, 32), assigner='YOLOv7OTAAssigner', **kwargs):
    cfg = dict(
        type='YOLOv7Head',
        head_module=dict(type='YOLOv7HeadModule', num_classes=num_classes,
                         in_channels=list(in_channels), num_keypoints=num_keypoints,
                         kpt_dim=kpt_dim, kpt_head=kpt_head),
        img_size=img_size, anchors=SMALL_ANCHORS, assigner=dict(type=assigner),
        kpt_sigmas=[0.05 + 0.01 * k for k in range(num_keypoints)] if num_keypoints else None)
    cfg.update(kwargs)
    with torch.random.fork_rng():  # the same weights whatever ran before
        torch.manual_seed(0)
        head = MODELS.build(cfg)
        head.init_weights()
    return head


def _feats(head, batch_size=2, img_size=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch_size, c, img_size // s, img_size // s, generator=gen)
            for c, s in zip(head.head_module.in_channels, STRIDES)]


def _gts(head, boxes, labels, visible_value=1.0, seed=0):
    """Keypoints scattered inside each box."""
    gen = torch.Generator().manual_seed(seed)
    keypoints, visible = None, None
    if head.num_keypoints:
        keypoints = [b[:, None, :2] + torch.rand(len(b), head.num_keypoints, 2, generator=gen)
                     * (b[:, None, 2:] - b[:, None, :2]) for b in boxes]
        visible = [torch.full((len(b), head.num_keypoints), visible_value) for b in boxes]
    return head.pack_gts(boxes, labels, keypoints, visible)


BOXES = [torch.tensor([[4., 6., 30., 40.], [20., 20., 60., 50.]]), torch.zeros(0, 4),
         torch.tensor([[10., 30., 22., 41.]])]
LABELS = [torch.tensor([0, 2]), torch.zeros(0, dtype=torch.long), torch.tensor([1])]


# ---------------------------------------------------------------------------- layers
class TestHeadModule:

    @pytest.mark.parametrize('arch', ['tiny', 'l', 'x'])
    def test_detection_params_one_class(self, arch):
        # per level: ImplicitA c + conv c*18 + 18 + ImplicitM 18 = 19c + 36
        module = _module(in_channels=NECK_CHANNELS[arch])
        expected = sum(19 * c + 36 for c in NECK_CHANNELS[arch])
        assert sum(p.numel() for p in module.parameters()) == expected
        if arch == 'l':
            assert expected == 34156

    def test_keypoint_branch_params(self):
        # one 1x1 conv c -> 3 anchors * 6 keypoints * 2 per level: 36 * (c + 1)
        det = sum(p.numel() for p in _module().parameters())
        kpt = sum(p.numel() for p in _module(num_keypoints=6, kpt_dim=2).parameters())
        assert kpt - det == 36 * (257 + 513 + 1025) == 64620

    def test_dw_keypoint_branch_structure(self):
        # YOLO-Pose dw_conv_kpt: 6 depthwise 3x3 (9c weights + BN 2c), 5 pointwise 1x1
        # (c^2 + BN 2c) and the output conv (3 * 6 * 3 outputs).
        in_channels = [8, 16, 32]
        det = sum(p.numel() for p in _module(in_channels=in_channels).parameters())
        module = _module(in_channels=in_channels, num_keypoints=6, kpt_dim=3, kpt_head='dw')
        kpt = sum(p.numel() for p in module.parameters()) - det
        assert kpt == sum(6 * 11 * c + 5 * (c * c + 2 * c) + 54 * c + 54 for c in in_channels)
        groups = [m.groups for m in module.kpt_convs[0].modules() if isinstance(m, torch.nn.Conv2d)]
        assert groups == [8, 1] * 5 + [8, 1]

    @pytest.mark.parametrize('arch', ['tiny', 'l', 'x'])
    def test_forward_shapes(self, arch):
        module = _module(num_classes=2, in_channels=NECK_CHANNELS[arch], num_keypoints=6)
        feats = [torch.randn(1, c, 64 // s, 64 // s) for c, s in zip(NECK_CHANNELS[arch],
                                                                    STRIDES)]
        det_maps, kpt_maps = module(feats)
        assert [tuple(m.shape) for m in det_maps] == [(1, 21, 8, 8), (1, 21, 4, 4), (1, 21, 2, 2)]
        assert [tuple(m.shape) for m in kpt_maps] == [(1, 36, 8, 8), (1, 36, 4, 4), (1, 36, 2, 2)]

    def test_no_keypoint_branch_without_keypoints(self):
        module = _module()
        assert len(module.kpt_convs) == 0
        assert module([torch.zeros(1, c, 2, 2) for c in NECK_CHANNELS['l']])[1] == []

    def test_bad_arguments_raise(self):
        with pytest.raises(ValueError, match='kpt_dim'):
            _module(num_keypoints=6, kpt_dim=4)
        with pytest.raises(ValueError, match='kpt_head'):
            _module(num_keypoints=6, kpt_head='mlp')
        with pytest.raises(ValueError, match='featmap_strides'):
            _module(featmap_strides=(8, 16))
        with pytest.raises(ValueError, match='3 levels but got 2'):
            _module()([torch.zeros(1, 256, 2, 2), torch.zeros(1, 512, 1, 1)])


class TestInit:

    @pytest.mark.parametrize('kpt_head', ['conv', 'dw'])
    def test_biases_after_init(self, kpt_head):
        module = _module(num_classes=1, num_keypoints=6, kpt_dim=2, kpt_head=kpt_head,
                         img_size=640)
        module.init_weights()
        module.init_weights()  # idempotent: the priors are set, not accumulated
        for conv, stride in zip(module.det_convs, STRIDES):
            bias = conv.bias.detach().view(3, 6)
            assert torch.equal(bias[:, :4], torch.zeros(3, 4))
            assert torch.allclose(bias[:, 4], torch.full((3, ), math.log(8 / (640 / stride)**2)))
            assert torch.allclose(bias[:, 5], torch.full((3, ), math.log(0.6 / 0.01)))
        kpt_convs = [m for m in module.kpt_convs.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(kpt_convs) == (3 if kpt_head == 'conv' else 36)
        for conv in kpt_convs:  # the dw blocks' convs have no bias (BN follows)
            assert conv.bias is None or torch.equal(conv.bias.detach(), torch.zeros_like(conv.bias))

    @pytest.mark.parametrize('kpt_dim', [2, 3])
    def test_centre_prior_puts_keypoints_at_the_cell_centre(self, kpt_dim):
        """``kpt_prior='centre'``: bias 0.5 on x, y (2 * 0.5 - 0.5 = +0.5 cell), 0 on the
        visibility logit; decoded on a zero feature map, every keypoint sits where the box
        branch puts its centre, ``(i + 0.5, j + 0.5) * s``, instead of ``(i - 0.5, j - 0.5) * s``."""
        module = _module(num_classes=1, num_keypoints=6, kpt_dim=kpt_dim, kpt_prior='centre')
        module.init_weights()
        module.init_weights()
        for conv in module.kpt_convs:
            bias = conv[-1].bias.detach().view(3, 6, kpt_dim)
            assert torch.equal(bias[..., :2], torch.full((3, 6, 2), 0.5))
            if kpt_dim == 3:
                assert torch.equal(bias[..., 2], torch.zeros(3, 6))
        with torch.no_grad():
            _, kpt_maps = module.eval()([torch.zeros(1, c, 2, 2) for c in NECK_CHANNELS['l']])
        cells = torch.tensor([[[0., 0.], [1., 0.]], [[0., 1.], [1., 1.]]])  # (H, W, (i, j))
        for kpt_map, stride in zip(kpt_maps, STRIDES):
            raw = kpt_map.view(3, 6, kpt_dim, 2, 2).permute(0, 3, 4, 1, 2)  # (A, H, W, K, D)
            decoded = KptBranch.decode_keypoints(raw, cells, stride)  # (A, H, W, K, 2)
            expected = ((cells + 0.5) * stride)[None, :, :, None].expand(3, 2, 2, 6, 2)
            assert torch.allclose(decoded, expected)
        with pytest.raises(ValueError, match='kpt_prior'):
            _module(num_keypoints=6, kpt_prior='center')

    def test_class_prior_depends_on_class_count(self):
        module = _module(num_classes=80)
        module.init_weights()
        bias = module.det_convs[0].bias.detach().view(3, 85)
        assert torch.allclose(bias[:, 5:], torch.full((3, 80), math.log(0.6 / 79.01)))

    @pytest.mark.parametrize('kpt_head', ['conv', 'dw'])
    def test_keypoint_outputs_carry_no_prior(self, kpt_head):
        """The bug to never have: keypoint channels 10, 11, 16, 17 of a (6 + 12)-channel anchor
        (1 class, 6 keypoints) starting as large as the objectness / class logits."""
        module = _module(num_classes=1, num_keypoints=6, kpt_dim=2, kpt_head=kpt_head).eval()
        module.init_weights()
        zeros = [torch.zeros(1, c, 4, 4) for c in NECK_CHANNELS['l']]
        with torch.no_grad():
            det_maps, kpt_maps = module(zeros)
        for det_map, kpt_map in zip(det_maps, kpt_maps):
            # YOLO-Pose's per-anchor layout: (x, y, w, h, obj, cls, 6 x (kx, ky))
            per_anchor = torch.cat([det_map.view(3, 6, 4, 4), kpt_map.view(3, 12, 4, 4)], 1)
            assert torch.equal(per_anchor[:, 6:], torch.zeros(3, 12, 4, 4))
            assert (per_anchor[:, [10, 11, 16, 17]] == 0).all()
            assert (per_anchor[:, 4].abs() > 3).all() and (per_anchor[:, 5].abs() > 3).all()
        gen = torch.Generator().manual_seed(0)
        feats = [torch.randn(2, c, 4, 4, generator=gen) for c in NECK_CHANNELS['l']]
        with torch.no_grad():
            det_maps, kpt_maps = module(feats)
        for det_map, kpt_map in zip(det_maps, kpt_maps):
            obj = det_map.view(2, 3, 6, 4, 4)[:, :, 4]
            assert kpt_map.abs().mean() < obj.abs().mean() / 5
            assert kpt_map.mean().abs() < 0.1


# ---------------------------------------------------------------------------- logic head
class TestDecode:

    def test_box_and_keypoint_round_trip(self):
        """Encode by hand a box and keypoints at level 1 (stride 16), anchor 2 (72 x 146),
        cell (i, j) = (5, 3), then decode through predict_by_feat."""
        head = _head(num_classes=2, num_keypoints=3, kpt_dim=3, img_size=256,
                     in_channels=(8, 8, 8), anchors=YOLOV7_P5_ANCHORS)
        level, a, i, j, stride = 1, 2, 5, 3, 16
        cx, cy, w, h = 90.0, 52.0, 100.0, 120.0
        kpts = [(100.0, 40.0), (70.0, 80.0), (90.0, 52.0)]
        logit = lambda p: math.log(p / (1 - p))  # noqa: E731
        raw_box = [logit((cx / stride - i + 0.5) / 2), logit((cy / stride - j + 0.5) / 2),
                   logit(math.sqrt(w / 72) / 2), logit(math.sqrt(h / 146) / 2)]

        det_maps = [torch.zeros(1, 3 * 7, 256 // s, 256 // s) for s in STRIDES]
        kpt_maps = [torch.zeros(1, 3 * 3 * 3, 256 // s, 256 // s) for s in STRIDES]
        for det_map in det_maps:
            det_map.view(1, 3, 7, *det_map.shape[2:])[:, :, 4] = -20.0  # no objects
        det = det_maps[level].view(1, 3, 7, 16, 16)
        det[0, a, :4, j, i] = torch.tensor(raw_box)
        det[0, a, 4:, j, i] = torch.tensor([10.0, -5.0, 5.0])  # obj, class 0, class 1
        kpt = kpt_maps[level].view(1, 3, 3, 3, 16, 16)
        for k, (kx, ky) in enumerate(kpts):
            kpt[0, a, k, :2, j, i] = torch.tensor([(kx / stride - i + 0.5) / 2,
                                                   (ky / stride - j + 0.5) / 2])
        kpt[0, a, 0, 2, j, i] = 2.0  # visibility logit of keypoint 0

        res = head.predict_by_feat(det_maps, kpt_maps, dict(score_thr=0.5))[0]
        assert len(res) == 1
        torch.testing.assert_close(res.bboxes[0], torch.tensor([cx - w / 2, cy - h / 2,
                                                               cx + w / 2, cy + h / 2]))
        torch.testing.assert_close(res.keypoints[0], torch.tensor(kpts))
        assert res.labels.tolist() == [1]
        assert res.scores[0].item() == pytest.approx(torch.sigmoid(torch.tensor(10.0)).item() *
                                                     torch.sigmoid(torch.tensor(5.0)).item())
        torch.testing.assert_close(res.keypoint_scores[0],
                                   torch.sigmoid(torch.tensor([2.0, 0.0, 0.0])))

    def test_keypoint_scores_are_ones_without_visibility(self):
        head = _head(num_keypoints=2, kpt_dim=2)
        res = head.predict_by_feat(*head(_feats(head, 1)), dict(score_thr=0.0, max_per_img=5))
        assert torch.equal(res[0].keypoint_scores, torch.ones(5, 2))

    def test_anchor_shape_checked(self):
        with pytest.raises(ValueError, match='anchors must be 3 levels x 3'):
            _head(anchors=[[(10, 13), (16, 30)]] * 3)


class TestLoss:

    @pytest.mark.parametrize('assigner', ['YOLOv7OTAAssigner', 'YOLOv5Assigner'])
    @pytest.mark.parametrize('num_keypoints,kpt_dim,kpt_head', [(0, 2, 'conv'), (4, 2, 'conv'),
                                                               (4, 3, 'dw')])
    def test_keys_finite_and_every_parameter_gets_a_gradient(self, assigner, num_keypoints,
                                                             kpt_dim, kpt_head):
        head = _head(num_keypoints=num_keypoints, kpt_dim=kpt_dim, kpt_head=kpt_head,
                     assigner=assigner)
        losses = head.loss_by_feat(*head(_feats(head, 3)), _gts(head, BOXES, LABELS))
        expected = {'loss_box', 'loss_obj', 'loss_cls'}
        if num_keypoints:
            expected |= {'loss_kpt'} | ({'loss_kpt_vis'} if kpt_dim == 3 else set())
        assert set(losses) == expected
        for name, value in losses.items():
            assert value.dim() == 0 and torch.isfinite(value) and value > 0, name
        sum(losses.values()).backward()
        for name, param in head.named_parameters():
            assert param.grad is not None and torch.isfinite(param.grad).all(), name

    def test_auxiliary_keypoint_loss(self):
        """``loss_kpt_aux`` adds one term, computed on the same positives as ``loss_kpt``
        (scaled like it: only by the batch), and leaves every other loss unchanged."""
        plain = _head()
        aux = _head(loss_kpt_aux=dict(type='KptScaledL1Loss', loss_weight=0.5))
        aux.load_state_dict(plain.state_dict())
        feats = _feats(plain, 3)
        gts = _gts(plain, BOXES, LABELS)
        a, b = plain.loss_by_feat(*plain(feats), gts), aux.loss_by_feat(*aux(feats), gts)
        assert set(b) == set(a) | {'loss_kpt_aux'}
        for name in a:
            assert b[name].item() == pytest.approx(a[name].item(), rel=1e-6), name
        assert b['loss_kpt_aux'] > 0
        sum(b.values()).backward()
        assert all(torch.isfinite(p.grad).all() for p in aux.parameters())

    def test_batch_without_ground_truth(self):
        head = _head()
        feats = _feats(head, 2)
        empty = [torch.zeros(0, 4), torch.zeros(0, 4)]
        no_labels = [torch.zeros(0, dtype=torch.long)] * 2
        losses = head.loss_by_feat(*head(feats), _gts(head, empty, no_labels))
        for name in ('loss_box', 'loss_cls', 'loss_kpt', 'loss_kpt_vis'):
            assert losses[name].item() == 0.0, name
        assert torch.isfinite(losses['loss_obj']) and losses['loss_obj'] > 0
        sum(losses.values()).backward()
        assert all(torch.isfinite(p.grad).all() for p in head.parameters())

    def test_no_visible_keypoint(self):
        head = _head()
        losses = head.loss_by_feat(*head(_feats(head, 3)),
                                   _gts(head, BOXES, LABELS, visible_value=0.0))
        assert losses['loss_kpt'].item() == 0.0
        assert all(torch.isfinite(v) for v in losses.values())
        assert losses['loss_kpt_vis'] > 0  # every visibility target is 0
        sum(losses.values()).backward()
        assert all(torch.isfinite(p.grad).all() for p in head.parameters())

    def test_single_class_trains_no_class_logit(self):
        head = _head(num_classes=1)
        labels = [torch.zeros(len(b), dtype=torch.long) for b in BOXES]
        losses = head.loss_by_feat(*head(_feats(head, 3)), _gts(head, BOXES, labels))
        assert losses['loss_cls'].item() == 0.0

    def test_gain_scaling(self):
        """YOLOv7's train.py: box *= 3/nl, cls *= C/80 * 3/nl, obj *= (img/640)^2 * 3/nl;
        keypoint gain unscaled, visibility scaled like the class gain."""
        scaled = _head(num_classes=3, img_size=64)
        plain = _head(num_classes=3, img_size=64, scale_loss_weights=False)
        plain.load_state_dict(scaled.state_dict())
        feats = _feats(scaled, 3)
        gts = _gts(scaled, BOXES, LABELS)
        a = scaled.loss_by_feat(*scaled(feats), gts)
        b = plain.loss_by_feat(*plain(feats), gts)
        factors = dict(loss_box=1.0, loss_obj=(64 / 640)**2, loss_cls=3 / 80, loss_kpt=1.0,
                       loss_kpt_vis=3 / 80)
        for name, factor in factors.items():
            assert a[name].item() == pytest.approx(b[name].item() * factor, rel=1e-5), name

    def test_losses_scale_with_batch_size(self):
        """The original returns ``loss * batch_size``: the same image twice doubles every
        loss, since all the per-level means are unchanged."""
        head = _head()
        feats = _feats(head, 1)
        gts = _gts(head, BOXES[:1], LABELS[:1])
        one = head.loss_by_feat(*head(feats), gts)
        two = head.loss_by_feat(*head([torch.cat([f, f]) for f in feats]),
                                {name: torch.cat([v, v]) for name, v in gts.items()})
        for name in one:
            assert two[name].item() == pytest.approx(2 * one[name].item(), rel=1e-5), name

    def test_losses_scale_with_world_size(self, monkeypatch):
        """The original's ``loss *= opt.world_size``: DDP averages the gradients of N processes,
        so each process's loss is N times its batch's, and N processes of batch B step as one
        process of batch N * B."""
        import turtle_plugin.models.heads.yolov7_head_core as yolov7_head_core
        head = _head()
        feats = _feats(head, 2)
        gts = _gts(head, BOXES[:2], LABELS[:2])
        one = head.loss_by_feat(*head(feats), gts)
        monkeypatch.setattr(yolov7_head_core, 'get_world_size', lambda: 4)
        four = head.loss_by_feat(*head(feats), gts)
        for name in one:
            assert four[name].item() == pytest.approx(4 * one[name].item(), rel=1e-6), name

    @pytest.mark.parametrize('label_smoothing,focal', [(0.0, False), (0.2, True)])
    def test_losses_by_hand_from_assignment(self, label_smoothing, focal):
        """Recompute loss_box, loss_obj and loss_cls YOLOv7's way, one positive at a time, from
        the assignment the head made: per level mean(1 - CIoU) over positives; objectness BCE
        against CIoU.clamp(0) at the positives' cells, times [4, 1, 0.4]; class BCE over
        positives x classes; then gains (box 0.05, obj 0.7 * (64/640)^2, cls 0.3 * 3/80) and
        the batch size 3. Label smoothing eps makes the class targets 1 - eps/2 and eps/2;
        focal objectness is torchvision's sigmoid_focal_loss (gamma 1.5, alpha 0.25)."""
        import torch.nn.functional as F
        from torchvision.ops import sigmoid_focal_loss

        from turtle_plugin.models.losses import bbox_ciou
        obj_cfg = dict(type='YOLOFocalLoss' if focal else 'YOLOBCEWithLogitsLoss',
                       loss_weight=0.7)
        head = _head(num_keypoints=0, label_smoothing=label_smoothing, loss_obj=obj_cfg)
        det_maps, kpt_maps = head(_feats(head, 3))
        gts = _gts(head, BOXES, LABELS)
        losses = head.loss_by_feat(det_maps, kpt_maps, gts)
        dets = [head._split_level(d).detach() for d in det_maps]
        box = obj = cls = 0.0
        levels_with_positives = num_pos = 0
        for level, target in enumerate(head.get_targets(dets, gts)):
            ious, cls_terms = [], []
            tobj = torch.zeros(dets[level].shape[:4])
            for b, g, a, o in target['pos'].nonzero().tolist():
                gi, gj = target['cells'][b, g, a, o].tolist()
                raw = dets[level][b, a, gj, gi]
                pred = head.decode_bboxes(raw[:4], torch.tensor([gi, gj]).float(),
                                          STRIDES[level], head.anchors[level, a])
                gt_ind = target['gt_inds'][b, g, a, o]
                iou = bbox_ciou(pred, gts['bboxes'][b, gt_ind])
                ious.append(iou)
                tobj[b, a, gj, gi] = max(tobj[b, a, gj, gi].item(), iou.clamp(min=0).item())
                onehot = F.one_hot(gts['labels'][b, gt_ind], 3).float()
                onehot = onehot * (1 - label_smoothing) + label_smoothing / 2
                cls_terms.append(F.binary_cross_entropy_with_logits(raw[5:], onehot,
                                                                    reduction='none'))
            levels_with_positives += bool(ious)
            num_pos += len(ious)
            if ious:  # YOLOv7 adds nothing for a level without positives
                box += (1 - torch.stack(ious)).mean().item()
                cls += torch.stack(cls_terms).mean().item()
            obj_loss = sigmoid_focal_loss if focal else F.binary_cross_entropy_with_logits
            kwargs = dict(gamma=1.5, alpha=0.25, reduction='mean') if focal else {}
            obj += [4.0, 1.0, 0.4][level] * obj_loss(dets[level][..., 4], tobj, **kwargs).item()
        assert levels_with_positives >= 2
        assert losses['loss_box'].item() == pytest.approx(0.05 * 3 * box, rel=1e-5)
        assert losses['loss_obj'].item() == pytest.approx(0.7 * 0.01 * 3 * obj, rel=1e-5)
        assert losses['loss_cls'].item() == pytest.approx(0.3 * 3 / 80 * 3 * cls, rel=1e-5)

    def test_sigmas(self):
        with pytest.warns(UserWarning, match='1/K = 0.250 for all 4 keypoints'):
            head = _head(kpt_sigmas=None)
        assert torch.allclose(head.kpt_branch.kpt_sigmas, torch.full((4, ), 0.25))
        with pytest.raises(ValueError, match='kpt_sigmas has 3 entries but the head predicts 4'):
            _head(kpt_sigmas=[0.1, 0.1, 0.1])
        # 'uniform': the loss's own width, 1/K, without the warning
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            head = _head(kpt_sigmas='uniform')
        assert torch.allclose(head.kpt_branch.kpt_sigmas, torch.full((4, ), 0.25))
        with pytest.raises(ValueError, match="a metainfo dict or 'uniform', got 'wide'"):
            _head(kpt_sigmas='wide')

    def test_missing_keypoints_raise(self):
        head = _head()
        with pytest.raises(ValueError, match='predicts 4 keypoints but the ground truth'):
            head.pack_gts(BOXES, LABELS)
        # MMDetection glue: a DetDataSample without keypoints
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData
        sample = DetDataSample()
        sample.gt_instances = InstanceData(bboxes=BOXES[0], labels=LABELS[0])
        with pytest.raises(ValueError, match='gt_instances has no `keypoints`'):
            head.loss(_feats(head, 1), [sample])

    def test_assigner_in_train_cfg_rejected(self):
        with pytest.raises(ValueError, match='move it there'):
            _head(train_cfg=dict(assigner=dict(type='YOLOv5Assigner')))


# ---------------------------------------------------------------------------- post-processing
class TestPostProcessing:
    # b1 overlaps b0 (IoU 81/119) in class 0; b3 sits apart and is class 1; b4 is below thr.
    BOXES = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.],
                          [40., 40., 50., 50.], [60., 60., 70., 70.]])
    SCORES = torch.tensor([[0.9, 0.3], [0.8, 0.0], [0.7, 0.0], [0.0, 0.6], [0.0005, 0.0]])
    # keypoint k of box n is (n, k): who owns a keypoint is readable from its value
    KPTS = torch.arange(5.)[:, None, None].expand(5, 3, 2).clone()

    def _run(self, **kwargs):
        cfg = dict(score_thr=0.001, iou_threshold=0.5, max_per_img=100)
        cfg.update(kwargs)
        return filter_and_nms(self.BOXES, self.SCORES, extras=dict(keypoints=self.KPTS),
                              **cfg)

    def test_keypoints_follow_their_boxes(self):
        res = self._run()
        assert res['scores'].tolist() == pytest.approx([0.9, 0.7, 0.6])
        assert res['labels'].tolist() == [0, 0, 1]
        owners = res['keypoints'][:, 0, 0].long()
        assert owners.tolist() == [0, 2, 3]
        assert torch.equal(res['bboxes'], self.BOXES[owners])

    def test_multi_label(self):
        res = self._run(multi_label=True)
        assert res['scores'].tolist() == pytest.approx([0.9, 0.7, 0.6, 0.3])
        assert res['labels'].tolist() == [0, 0, 1, 1]
        assert res['keypoints'][:, 0, 0].long().tolist() == [0, 2, 3, 0]

    def test_max_per_img_and_nms_pre(self):
        assert self._run(max_per_img=2)['keypoints'][:, 0, 0].tolist() == [0, 2]
        # nms_pre=2 keeps b0 and b1 only; b1 is then suppressed by b0
        assert self._run(nms_pre=2)['keypoints'][:, 0, 0].tolist() == [0]

    def test_head_predictions_keep_keypoints_with_boxes(self):
        """Through the head: every kept keypoint set is the one decoded at its box's cell."""
        head = _head(num_keypoints=2, kpt_dim=2)
        det_maps, kpt_maps = head(_feats(head, 2))
        bboxes, scores, extras = head._decode_dense(det_maps, kpt_maps)
        results = head.predict_by_feat(det_maps, kpt_maps, dict(score_thr=0.0, max_per_img=20,
                                                                multi_label=False))
        for i, res in enumerate(results):
            for box, kpts in zip(res.bboxes, res.keypoints):
                row = (bboxes[i] == box).all(1).nonzero()[0, 0]
                assert torch.equal(extras['keypoints'][i, row], kpts)

    def test_merge_averages_the_suppressed_candidates_by_score(self):
        """merge=True (YOLOv5's merge-NMS): b0 (0.9) suppressed b1 (0.8, IoU 0.68), so b0 and its
        keypoints become (0.9 * b0 + 0.8 * b1) / 1.7; boxes that suppressed nothing keep
        theirs; scores and labels are the kept candidates'."""
        res = self._run(merge=True)
        w = 0.8 / 1.7
        assert res['scores'].tolist() == pytest.approx([0.9, 0.7, 0.6])
        assert res['labels'].tolist() == [0, 0, 1]
        assert res['bboxes'][0].tolist() == pytest.approx([w, w, 10 + w, 10 + w])
        assert torch.equal(res['bboxes'][1:], self.BOXES[[2, 3]])
        assert torch.allclose(res['keypoints'],
                              torch.tensor([w, 2., 3.])[:, None, None].expand(3, 3, 2))
        # below the IoU threshold nothing is suppressed, so nothing is merged
        plain, merged = self._run(iou_threshold=0.7), self._run(iou_threshold=0.7, merge=True)
        for key in ('bboxes', 'scores', 'labels', 'keypoints'):
            assert torch.allclose(merged[key].float(), plain[key].float())

    def test_merge_stays_within_a_class(self):
        """multi_label: b0's class-1 candidate (0.3) overlaps b1, whose class-1 score is below
        the threshold, so it merges with nothing; b0's class-0 candidate merges with b1's."""
        res = self._run(multi_label=True, merge=True)
        w = 0.8 / 1.7
        assert res['labels'].tolist() == [0, 0, 1, 1]
        assert res['keypoints'][:, 0, 0].tolist() == pytest.approx([w, 2., 3., 0.])
        assert torch.equal(res['bboxes'][3], self.BOXES[0])

    def test_merge_with_nothing_kept_and_integer_extras(self):
        res = filter_and_nms(self.BOXES, self.SCORES, 0.95, 0.5, 10, merge=True,
                             extras=dict(keypoints=self.KPTS))
        assert res['bboxes'].shape == (0, 4) and res['keypoints'].shape == (0, 3, 2)
        with pytest.raises(ValueError, match="merge-NMS averages every extra; 'ids'"):
            filter_and_nms(self.BOXES, self.SCORES, 0.001, 0.5, 10, merge=True,
                           extras=dict(ids=torch.arange(5)))

    def test_head_merge_nms_is_the_weighted_mean_of_the_dense_predictions(self):
        """Through the head (test_cfg merge_nms=True): the best box's keypoints are the
        score-weighted mean of every dense prediction overlapping it above the IoU threshold."""
        from torchvision.ops import box_iou
        head = _head(num_keypoints=2, kpt_dim=2)
        det_maps, kpt_maps = head(_feats(head, 1))
        bboxes, scores, extras = head._decode_dense(det_maps, kpt_maps)
        cfg = dict(score_thr=0.0, max_per_img=5, nms=dict(iou_threshold=0.1), multi_label=False)
        plain = head.predict_by_feat(det_maps, kpt_maps, cfg)[0]
        merged = head.predict_by_feat(det_maps, kpt_maps, dict(cfg, merge_nms=True))[0]
        assert torch.equal(merged.scores, plain.scores)
        top = (bboxes[0] == plain.bboxes[0]).all(1).nonzero()[0, 0]
        best = scores[0].max(1)
        weights = ((box_iou(bboxes[0, top:top + 1], bboxes[0])[0] > 0.1)
                   & (best.indices == best.indices[top])) * best.values
        expected = (weights[:, None, None] * extras['keypoints'][0]).sum(0) / weights.sum()
        assert weights.gt(0).sum() > 1  # it did average something
        assert torch.allclose(merged.keypoints[0], expected, atol=1e-4)
        assert not torch.allclose(merged.keypoints[0], plain.keypoints[0])

    def test_extras_length_checked(self):
        with pytest.raises(ValueError, match="extra 'keypoints' has 2 rows for 5 boxes"):
            filter_and_nms(self.BOXES, self.SCORES, 0.0, 0.5, 10,
                           extras=dict(keypoints=self.KPTS[:2]))


def test_kpt_head_needs_keypoints():
    with pytest.raises(ValueError, match='num_keypoints > 0'):
        YOLOv7KptHead(head_module=dict(type='YOLOv7HeadModule', num_classes=1,
                                       in_channels=[8, 8, 8]))


def test_heads_are_siblings_each_in_its_own_scope():
    """The layers serve both scopes; each head is its framework's, over one unregistered core."""
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmpose.registry import MODELS as MMPOSE_MODELS
    assert MMDET_MODELS.get('YOLOv7HeadModule') is MMPOSE_MODELS.get('YOLOv7HeadModule')
    assert MMDET_MODELS.get('YOLOv7Head') is YOLOv7Head
    assert MMPOSE_MODELS.get('YOLOv7KptHead') is YOLOv7KptHead
    assert MMPOSE_MODELS.get('YOLOv7Head') is None and MMDET_MODELS.get('YOLOv7KptHead') is None
    assert 'YOLOv7HeadCore' not in MMDET_MODELS and 'YOLOv7HeadCore' not in MMPOSE_MODELS
    assert YOLOv7Head.__bases__ == YOLOv7KptHead.__bases__ == (YOLOv7HeadCore, )
    assert isinstance(_head(), YOLOv7Head)


def test_detection_head_has_no_keypoint_branch():
    head = _head(num_keypoints=0)
    assert head.kpt_branch is None
    assert list(head.loss_scales) == ['box', 'obj', 'cls']
    assert isinstance(_head().kpt_branch, KptBranch)


def test_image_size_belongs_to_the_head():
    """It scales the objectness gain and reaches the layers' objectness prior; the layers'
    config may not set a second one."""
    head = _head(img_size=320)
    assert head.img_size == head.head_module.img_size == 320
    with pytest.raises(ValueError, match='head_module.img_size is set'):
        _head(head_module=dict(type='YOLOv7HeadModule', num_classes=1, in_channels=[8, 16, 32],
                               img_size=320))


REPO = Path(__file__).resolve().parents[2]


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def _one_step(out, repeat, processes):
    """Run ddp_update_worker.py: ``processes`` gloo processes (torchrun), or a plain one."""
    worker = str(Path(__file__).with_name('ddp_update_worker.py'))
    launch = [sys.executable, worker] if processes == 1 else [
        sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={processes}',
        '--master_addr=127.0.0.1', f'--master_port={_free_port()}', worker]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    proc = subprocess.run([*launch, str(out), '--repeat', str(repeat)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return torch.load(out)


@pytest.mark.slow
@pytest.mark.dist
def test_two_processes_step_as_one_process_with_twice_the_batch(tmp_path):
    """One training step (the runner's train_step, SGD with YOLOv7's weight decay for the total
    batch of 8): 2 gloo processes of the same 4 real frames each give the same parameter update
    as 1 process of those 4 frames twice. Equal by construction: every process sees the same
    images, so the positives, the per-level loss means and the BatchNorm statistics are those of
    the single process's batch; only the world-size factor of the loss can make them differ
    (without it the 2-process update is about half)."""
    two = _one_step(tmp_path / 'two.pt', repeat=1, processes=2)
    one = _one_step(tmp_path / 'one.pt', repeat=2, processes=1)
    assert (two['world_size'], two['batch_per_process']) == (2, 4)
    assert (one['world_size'], one['batch_per_process']) == (1, 8)
    assert one['updates'].keys() == two['updates'].keys()
    norm_one = torch.stack([u.norm() for u in one['updates'].values()]).norm()
    norm_two = torch.stack([u.norm() for u in two['updates'].values()]).norm()
    assert norm_one > 0
    assert (norm_two / norm_one).item() == pytest.approx(1.0, abs=1e-4)
    # per tensor, to float32 rounding: an update read back as p_after - p_before is off by up to
    # ulp(p) ~ 4e-9, which is 2e-4 of the smallest tensor's update (1.7e-5); a missing
    # world-size factor is off by 0.5
    for name, update in one['updates'].items():
        assert (two['updates'][name] - update).norm() <= 1e-3 * update.norm(), name
    for name, value in one['losses'].items():  # the logged losses of rank 0: the same too
        assert two['losses'][name] == pytest.approx(value, rel=1e-5), name


# ------------------------------------------------------------------ flip test
FLIP = [1, 0, 2, 3]  # keypoints 0 and 1 are mirror partners


def _mirrored_maps(head, det_maps, kpt_maps, kpt_shift_px=0.0):
    """The raw maps a mirror-equivariant network gives for the mirrored input: columns
    reversed; box ``t_x -> -t_x`` (``2 sigmoid(-t) - 0.5 = 1.5 - (2 sigmoid(t) - 0.5)``);
    keypoint ``x -> 1 - x`` (its decoding has no sigmoid), keypoint ``k`` in the slot of its
    partner. ``kpt_shift_px`` moves the mirrored image's keypoints right by that many input
    pixels at every level (raw ``+ shift / (2 * stride)``)."""
    num_anchors, num_kpts, kpt_dim = head.num_anchors, head.num_keypoints, head.kpt_branch.kpt_dim
    mirrored_det, mirrored_kpt = [], []
    for det_map, kpt_map, stride in zip(det_maps, kpt_maps, STRIDES):
        b, _, h, w = det_map.shape
        det = det_map.view(b, num_anchors, -1, h, w).flip(-1).clone()
        det[:, :, 0] = -det[:, :, 0]
        mirrored_det.append(det.view(b, -1, h, w))
        kpt = kpt_map.view(b, num_anchors, num_kpts, kpt_dim, h, w).flip(-1)[:, :, FLIP].clone()
        kpt[:, :, :, 0] = 1 - kpt[:, :, :, 0] + kpt_shift_px / (2 * stride)
        mirrored_kpt.append(kpt.reshape(b, -1, h, w))
    return mirrored_det, mirrored_kpt


@pytest.mark.parametrize('kpt_shift_px', [0.0, 1.5])
def test_flip_test_averages_the_mirrored_prediction_anchor_by_anchor(kpt_shift_px):
    """For a mirror-equivariant network the flip test returns the plain prediction (boxes,
    scores, keypoints, visibility); a mirrored prediction whose keypoints sit 1.5 px further
    right maps back 1.5 px further left, so the average is 0.75 px left of the plain one --
    which fails if the columns, the x mapping or the keypoint partners are wrong."""
    head = _head(num_classes=2, num_keypoints=4, kpt_dim=3)
    with torch.no_grad():
        det_maps, kpt_maps = head(_feats(head, batch_size=2))
    cfg = dict(score_thr=0.3, max_per_img=50)
    plain = head.predict_by_feat(det_maps, kpt_maps, cfg)
    fused = head.predict_flip_by_feat(det_maps, kpt_maps,
                                      *_mirrored_maps(head, det_maps, kpt_maps, kpt_shift_px),
                                      FLIP, cfg)
    for p, f in zip(plain, fused):
        assert len(p) > 0 and len(f) == len(p)
        torch.testing.assert_close(f.bboxes, p.bboxes, rtol=0, atol=1e-4)
        torch.testing.assert_close(f.scores, p.scores, rtol=0, atol=1e-6)
        assert torch.equal(f.labels, p.labels)
        shift = torch.tensor([-kpt_shift_px / 2, 0.])
        torch.testing.assert_close(f.keypoints, p.keypoints + shift, rtol=0, atol=1e-4)
        torch.testing.assert_close(f.keypoint_scores, p.keypoint_scores, rtol=0, atol=1e-6)


def test_flip_test_with_identity_partners_differs_for_a_non_identity_skeleton():
    """The partners matter: the same maps fused with identity flip indices do not give the
    plain keypoints back (keypoints 0 and 1 swapped before averaging)."""
    head = _head(num_classes=1, num_keypoints=4, kpt_dim=2)
    with torch.no_grad():
        det_maps, kpt_maps = head(_feats(head, batch_size=1))
    cfg = dict(score_thr=0.3, max_per_img=20)
    plain = head.predict_by_feat(det_maps, kpt_maps, cfg)[0]
    wrong = head.predict_flip_by_feat(det_maps, kpt_maps,
                                      *_mirrored_maps(head, det_maps, kpt_maps),
                                      [0, 1, 2, 3], cfg)[0]
    assert len(plain) == len(wrong) > 0
    torch.testing.assert_close(wrong.keypoints[:, 2:], plain.keypoints[:, 2:], rtol=0, atol=1e-4)
    assert (wrong.keypoints[:, :2] - plain.keypoints[:, :2]).abs().max() > 0.1


def test_flip_test_rejects_bad_partners_and_mismatched_maps():
    head = _head(num_classes=1, num_keypoints=4, kpt_dim=2)
    with torch.no_grad():
        det_maps, kpt_maps = head(_feats(head, batch_size=1))
        other_det, other_kpt = head(_feats(head, batch_size=1, img_size=96))
    with pytest.raises(ValueError, match='not a permutation'):
        head.predict_flip_by_feat(det_maps, kpt_maps, det_maps, kpt_maps, [0, 0, 2, 3])
    with pytest.raises(ValueError, match='level 0 has maps of shape'):
        head.predict_flip_by_feat(det_maps, kpt_maps, other_det, other_kpt, FLIP)
