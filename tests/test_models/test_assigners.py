"""Assigners of the YOLOv7 head.

``YOLOv5Assigner`` is checked on a hand-worked example and, with ``YOLOv7OTAAssigner``, against a
straightforward per-image reference written below after YOLOv7's ``find_3_positive`` and
``ComputeLossOTA.build_targets`` (boolean filtering, a Python loop over images and over ground
truths, ``.item()``) -- the batched implementations must pick exactly the same positives.
"""
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from torchvision.ops import box_iou

from turtle_plugin.models.task_modules import (YOLOv5Assigner, YOLOv7OTAAssigner,
                                               batched_keypoint_oks)
from turtle_plugin.registry import MODELS, TASK_UTILS


@pytest.fixture(autouse=True)
def _mmdet_default_scope():
    """Build in MMDetection's scope, whatever default scope an earlier test left behind."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield

STRIDES = (8, 16, 32)
IMG = 160  # grids 20, 10, 5
# YOLOv7's P5 anchors / 4 (all exactly representable, so float32 and float64 agree)
ANCHORS = [[(3, 4), (4.75, 9), (10, 7)], [(9, 18.75), (19, 13.75), (18, 36.5)],
           [(35.5, 27.5), (48, 60.75), (114.75, 100.25)]]
NUM_CLASSES = 3


def _head(assigner: str):
    return MODELS.build(
        dict(type='YOLOv7Head',
             head_module=dict(type='YOLOv7HeadModule', num_classes=NUM_CLASSES,
                              in_channels=[8, 8, 8], featmap_strides=STRIDES),
             img_size=IMG, anchors=ANCHORS, assigner=dict(type=assigner)))


def _positives(targets):
    """Batched targets -> Counter of (image, level, anchor, gj, gi, gt)."""
    found = Counter()
    for level, target in enumerate(targets):
        for b, g, a, o in target['pos'].nonzero().tolist():
            gi, gj = target['cells'][b, g, a, o].tolist()
            found[(b, level, a, gj, gi, target['gt_inds'][b, g, a, o].item())] += 1
    return found


# ------------------------------------------------------------------ reference (per image)
def reference_candidates(gt_boxes, level_shapes, anchor_t=4.0, anchors=ANCHORS, strides=STRIDES):
    """YOLOv7's ``find_3_positive`` on pixel boxes. Returns per level
    (image, anchor, gj, gi, generating gt index within its image)."""
    rows = [[b, 0, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, g]
            for b, boxes in enumerate(gt_boxes)
            for g, (x1, y1, x2, y2) in enumerate(boxes.tolist())]
    targets = torch.tensor(rows, dtype=torch.float64).reshape(-1, 7)
    na, nt = 3, targets.shape[0]
    ai = torch.arange(na, dtype=torch.float64).view(na, 1).repeat(1, nt)
    targets = torch.cat((targets.repeat(na, 1, 1), ai[:, :, None]), 2)  # (na, nt, 8)
    g = 0.5
    off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float64) * g
    out = []
    for i, (h, w) in enumerate(level_shapes):
        level_anchors = torch.tensor(anchors[i], dtype=torch.float64) / strides[i]
        gain = torch.ones(8, dtype=torch.float64)
        gain[2:6] = 1 / strides[i]
        t = targets * gain
        if nt:
            r = t[:, :, 4:6] / level_anchors[:, None]
            j = torch.max(r, 1. / r).max(2)[0] < anchor_t
            t = t[j]
            gxy = t[:, 2:4]
            gxi = torch.tensor([w, h], dtype=torch.float64) - gxy
            j, k = ((gxy % 1. < g) & (gxy > 1.)).T
            l, m = ((gxi % 1. < g) & (gxi > 1.)).T
            j = torch.stack((torch.ones_like(j), j, k, l, m))
            t = t.repeat((5, 1, 1))[j]
            offsets = (torch.zeros_like(gxy)[None] + off[:, None])[j]
        else:
            t = targets[0]
            offsets = 0
        gij = (t[:, 2:4] - offsets).long()
        gi, gj = gij.T
        out.append((t[:, 0].long(), t[:, 7].long(), gj.clamp(0, h - 1), gi.clamp(0, w - 1),
                    t[:, 6].long()))
    return out


def reference_ota(dets, gt_boxes, gt_labels, anchors=ANCHORS, strides=STRIDES,
                  num_classes=NUM_CLASSES):
    """YOLOv7's ``ComputeLossOTA.build_targets``, one image and one ground truth at a time.

    Returns the Counter of positives and how many columns several ground truths had chosen.
    """
    cands = reference_candidates(gt_boxes, [d.shape[2:4] for d in dets], anchors=anchors,
                                 strides=strides)
    found, shared_columns = Counter(), 0
    for b in range(len(gt_boxes)):
        num_gt = len(gt_boxes[b])
        if num_gt == 0:
            continue
        boxes, p_obj, p_cls, meta = [], [], [], []
        for i, pi in enumerate(dets):
            cb, ca, cgj, cgi, _ = cands[i]
            idx = cb == b
            ca, cgj, cgi = ca[idx], cgj[idx], cgi[idx]
            fg = pi[b, ca, cgj, cgi]
            p_obj.append(fg[:, 4:5])
            p_cls.append(fg[:, 5:])
            grid = torch.stack([cgi, cgj], dim=1)
            anchor_wh = torch.tensor(anchors[i], dtype=torch.float64)[ca]
            pxy = (fg[:, :2].sigmoid() * 2. - 0.5 + grid) * strides[i]
            pwh = (fg[:, 2:4].sigmoid() * 2)**2 * anchor_wh
            boxes.append(torch.cat([pxy - pwh / 2, pxy + pwh / 2], 1))
            meta += [(i, a, gj, gi) for a, gj, gi in zip(ca.tolist(), cgj.tolist(), cgi.tolist())]
        pxyxys = torch.cat(boxes)
        if pxyxys.shape[0] == 0:
            continue
        p_obj, p_cls = torch.cat(p_obj), torch.cat(p_cls)
        pair_wise_iou = box_iou(gt_boxes[b], pxyxys)
        pair_wise_iou_loss = -torch.log(pair_wise_iou + 1e-8)
        top_k, _ = torch.topk(pair_wise_iou, min(10, pair_wise_iou.shape[1]), dim=1)
        dynamic_ks = torch.clamp(top_k.sum(1).int(), min=1)
        gt_cls = F.one_hot(gt_labels[b], num_classes).to(torch.float64).unsqueeze(1).repeat(
            1, pxyxys.shape[0], 1)
        cls_preds = (p_cls.unsqueeze(0).repeat(num_gt, 1, 1).sigmoid() *
                     p_obj.unsqueeze(0).repeat(num_gt, 1, 1).sigmoid())
        y = cls_preds.sqrt()
        pair_wise_cls_loss = F.binary_cross_entropy_with_logits(
            torch.log(y / (1 - y)), gt_cls, reduction='none').sum(-1)
        cost = pair_wise_cls_loss + 3.0 * pair_wise_iou_loss
        matching_matrix = torch.zeros_like(cost)
        for gt_idx in range(num_gt):
            _, pos_idx = torch.topk(cost[gt_idx], k=dynamic_ks[gt_idx].item(), largest=False)
            matching_matrix[gt_idx][pos_idx] = 1.0
        anchor_matching_gt = matching_matrix.sum(0)
        if (anchor_matching_gt > 1).sum() > 0:
            shared_columns += int((anchor_matching_gt > 1).sum())
            _, cost_argmin = torch.min(cost[:, anchor_matching_gt > 1], dim=0)
            matching_matrix[:, anchor_matching_gt > 1] *= 0.0
            matching_matrix[cost_argmin, anchor_matching_gt > 1] = 1.0
        fg_mask = matching_matrix.sum(0) > 0.0
        matched_gt_inds = matching_matrix[:, fg_mask].argmax(0)
        for col, gt in zip(fg_mask.nonzero()[:, 0].tolist(), matched_gt_inds.tolist()):
            level, a, gj, gi = meta[col]
            found[(b, level, a, gj, gi, gt)] += 1
    return found, shared_columns


def _random_batch(seed, counts=(3, 0, 5, 2), dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    dets = [torch.randn(len(counts), 3, IMG // s, IMG // s, 5 + NUM_CLASSES, generator=gen,
                        dtype=dtype) for s in STRIDES]
    boxes, labels = [], []
    for n in counts:
        centre = torch.rand(n, 2, generator=gen, dtype=dtype) * IMG
        size = 4 + torch.rand(n, 2, generator=gen, dtype=dtype) * 90
        boxes.append(torch.cat([centre - size / 2, centre + size / 2], 1))
        labels.append(torch.randint(NUM_CLASSES, (n, ), generator=gen))
    return dets, boxes, labels


# ------------------------------------------------------------------ tests
def test_registered_and_selectable():
    for name in ('YOLOv5Assigner', 'YOLOv7OTAAssigner'):
        assert name in TASK_UTILS
    assert isinstance(_head('YOLOv5Assigner').assigner, YOLOv5Assigner)
    assert isinstance(_head('YOLOv7OTAAssigner').assigner, YOLOv7OTAAssigner)


def test_yolov5_candidates_by_hand():
    """One 8x8 level, stride 8, anchors 10x10, 40x40, 100x100.

    gt 0: centre (19, 29) -> grid (2.375, 3.625), size 16x24. Ratios to the anchors: (1.6, 2.4),
    (0.4, 0.6) -> max(r, 1/r) = 2.5, (0.16, 0.24) -> 6.25: anchors 0 and 1 match. x fraction
    .375 < .5 and x > 1 -> also the left cell (1, 3); y fraction .625 -> not the top cell;
    8 - 2.375 = 5.625 -> not the right cell; 8 - 3.625 = 4.375 -> the bottom cell (2, 4).
    gt 1: centre (3, 3) -> grid (0.375, 0.375), size 80x80: only anchors 1 and 2 (2 and 1.25);
    x, y < 1 -> no left/top cell; 7.625 -> no right/bottom cell: its own cell (0, 0) only.
    gt 2 is padding.
    """
    assigner = YOLOv5Assigner(anchor_t=4.0)
    gt = torch.tensor([[[11., 17., 27., 41.], [-37., -37., 43., 43.], [0., 0., 0., 0.]]])
    valid = torch.tensor([[True, True, False]])
    anchors = torch.tensor([[[10., 10.], [40., 40.], [100., 100.]]])
    cand = assigner.get_candidates(gt, valid, [(8, 8)], [8], anchors)
    assert cand['cells'].shape == (1, 3, 1, 3, 5, 2) and cand['valid'].shape == (1, 3, 1, 3, 5)
    picked = {(g, a, *cand['cells'][0, g, 0, a, o].tolist())
              for g, _, a, o in cand['valid'][0].nonzero().tolist()}
    assert picked == {(0, 0, 2, 3), (0, 0, 1, 3), (0, 0, 2, 4), (0, 1, 2, 3), (0, 1, 1, 3),
                      (0, 1, 2, 4), (1, 1, 0, 0), (1, 2, 0, 0)}
    pos, gt_inds = assigner.assign(None, None, cand['valid'].view(1, 3, -1), gt, None, valid)
    assert torch.equal(pos, cand['valid'].view(1, 3, -1))
    assert (gt_inds[pos] == torch.tensor([0] * 6 + [1] * 2)).all()


def test_yolov5_assigner_matches_reference():
    dets, boxes, labels = _random_batch(0)
    head = _head('YOLOv5Assigner')
    found = _positives(head.get_targets(dets, head.pack_gts(boxes, labels)))
    expected = Counter()
    for level, (b, a, gj, gi, g) in enumerate(reference_candidates(boxes, [(20, 20), (10, 10),
                                                                           (5, 5)])):
        for row in zip(b.tolist(), a.tolist(), gj.tolist(), gi.tolist(), g.tolist()):
            expected[(row[0], level, *row[1:])] += 1
    assert sum(expected.values()) > 20
    assert found == expected


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_ota_matches_per_image_reference(seed):
    dets, boxes, labels = _random_batch(seed)
    head = _head('YOLOv7OTAAssigner')
    found = _positives(head.get_targets(dets, head.pack_gts(boxes, labels)))
    expected, _ = reference_ota(dets, boxes, labels)
    assert sum(expected.values()) > 10
    assert not any(key[0] == 1 for key in found)  # the image without ground truth
    assert found == expected


def test_ota_reference_exercises_every_branch():
    """The random batches above include columns chosen by several ground truths (resolved to
    the cheapest) and positives regressing to a ground truth other than the one that
    generated the candidate -- the parts of SimOTA easiest to get wrong."""
    shared_total, foreign = 0, 0
    for seed in range(3):
        dets, boxes, labels = _random_batch(seed)
        head = _head('YOLOv7OTAAssigner')
        targets = head.get_targets(dets, head.pack_gts(boxes, labels))
        shared_total += reference_ota(dets, boxes, labels)[1]
        for target in targets:
            generating = torch.arange(target['pos'].shape[1]).view(1, -1, 1, 1)
            foreign += int((target['pos'] & (target['gt_inds'] != generating)).sum())
    assert shared_total > 0
    assert foreign > 0


def test_ota_dynamic_k_and_conflicts_by_hand():
    """Two ground truths on the same 100x100 box, labels 0 and 1, and 12 candidates (all
    generated by gt 0) predicting the box 100x95: IoU 0.95 each, so k = floor(10 * 0.95) = 9
    for both. Candidate m scores class 0 with y0 = 0.9 - 0.05 m and class 1 with y1 = 0.1.

    gt 0 (cost -log y0 - log(1 - y1) + c) takes the 9 with the largest y0: m = 0..8.
    gt 1 (cost -log(1 - y0) - log y1 + c) takes the 9 with the smallest y0: m = 3..11.
    m = 3..8 are taken twice and go to gt 0, whose cost is lower there (y0 >= 0.5 > y1), so
    m = 0..8 regress to gt 0 and m = 9..11 to gt 1 -- though gt 0 generated them.
    """
    num = 12
    boxes = torch.tensor([0., 0., 100., 95.]).expand(1, 2, num, 4)
    y0 = 0.9 - 0.05 * torch.arange(num, dtype=torch.float32)
    scores = torch.stack([y0, torch.full_like(y0, 0.1)], -1).expand(1, 2, num, 2)
    cand_valid = torch.tensor([[True] * num, [False] * num])[None]
    gt_bboxes = torch.tensor([[[0., 0., 100., 100.], [0., 0., 100., 100.]]])
    pos, gt_inds = YOLOv7OTAAssigner().assign(boxes, scores, cand_valid, gt_bboxes,
                                              torch.tensor([[0, 1]]), torch.ones(1, 2).bool())
    assert pos[0, 0].all() and not pos[0, 1].any()
    assert gt_inds[0, 0].tolist() == [0] * 9 + [1] * 3


def test_ota_without_any_ground_truth():
    dets, boxes, labels = _random_batch(0, counts=(0, 0))
    head = _head('YOLOv7OTAAssigner')
    targets = head.get_targets(dets, head.pack_gts(boxes, labels))
    assert all(t['pos'].shape == (2, 0, 3, 5) for t in targets)


def test_ota_float32_matches_float64_choice():
    """The assigner runs in the predictions' precision; float32 picks the same positives on
    this batch."""
    dets, boxes, labels = _random_batch(1)
    head = _head('YOLOv7OTAAssigner')
    found64 = _positives(head.get_targets(dets, head.pack_gts(boxes, labels)))
    found32 = _positives(head.get_targets([d.float() for d in dets],
                                          head.pack_gts([b.float() for b in boxes], labels)))
    assert found32 == found64


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_ota_on_cuda_without_host_sync():
    dets, boxes, labels = _random_batch(2)
    head = _head('YOLOv7OTAAssigner')
    expected = _positives(head.get_targets(dets, head.pack_gts(boxes, labels)))
    head = head.cuda()
    dets = [d.cuda() for d in dets]
    gts = head.pack_gts([b.cuda() for b in boxes], [lb.cuda() for lb in labels])
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        targets = head.get_targets(dets, gts)
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert _positives([{k: v.cpu() for k, v in t.items()} for t in targets]) == expected


# ------------------------------------------------------------- keypoints in the cost
def test_keypoint_oks_by_hand_and_against_mmpose():
    """One ground truth, keypoints (10, 10) and (20, 20), box area 100, sigmas 0.1: the scale
    is 2 * 100 * (2 * 0.1)^2 = 8, so a keypoint 2 px off in x and y (d^2 = 8) scores e^-1."""
    from mmpose.models.task_modules.assigners import PoseOKS
    gt = torch.tensor([[[[10., 10.], [20., 20.]]]])
    pred = torch.tensor([[[[12., 12.], [20., 20.]], [[10., 10.], [20., 20.]]]])
    area, sigmas = torch.tensor([[100.]]), torch.tensor([0.1, 0.1])
    oks = batched_keypoint_oks
    assert oks(gt, torch.ones(1, 1, 2), area, pred, sigmas)[0, 0].tolist() == pytest.approx(
        [(math.exp(-1) + 1) / 2, 1.0])
    assert oks(gt, torch.tensor([[[1., 0.]]]), area, pred, sigmas)[0, 0].tolist() == \
        pytest.approx([math.exp(-1), 1.0])
    assert oks(gt, torch.zeros(1, 1, 2), area, pred, sigmas).tolist() == [[[0.0, 0.0]]]

    # MMPose's PoseOKS (YOLOX-Pose's assigner) on random keypoints, one image
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(1, 3, 5, 2, generator=gen) * 50
    pred = torch.rand(1, 7, 5, 2, generator=gen) * 50
    visible = (torch.rand(1, 3, 5, generator=gen) > 0.3).float()
    areas, sigmas = 100 + torch.rand(1, 3, generator=gen) * 900, torch.rand(5, generator=gen) / 5
    calc = PoseOKS(metainfo=None)
    calc.sigmas = sigmas
    expected = calc(pred[0].unsqueeze(1), target=gt[0].unsqueeze(0),
                    target_weights=visible[0].unsqueeze(0), areas=areas[0].unsqueeze(0))
    assert torch.allclose(oks(gt, visible, areas, pred, sigmas)[0], expected.T, atol=1e-6)


def _one_gt_by_hand(kpt_offsets, ious=(0.95, 0.9), visible=1.):
    """One 100x100 ground truth with one keypoint at (50, 50), sigma 0.1 (scale
    2 * 10^4 * 0.04 = 800), and one candidate per entry of ``ious`` (boxes 100 x 100 * IoU,
    equal scores), whose keypoint is ``kpt_offsets[m]`` px right of the truth."""
    num = len(ious)
    boxes = torch.tensor([[0., 0., 100., 100. * iou] for iou in ious]).view(1, 1, num, 4)
    kpts = torch.tensor([[[50. + dx, 50.]] for dx in kpt_offsets]).view(1, 1, num, 1, 2)
    return dict(pred_bboxes=boxes, pred_scores=torch.full((1, 1, num, 1), 0.5),
                cand_valid=torch.ones(1, 1, num, dtype=torch.bool),
                gt_bboxes=torch.tensor([[[0., 0., 100., 100.]]]),
                gt_labels=torch.zeros(1, 1, dtype=torch.long),
                gt_valid=torch.ones(1, 1, dtype=torch.bool), pred_kpts=kpts,
                gt_kpts=torch.tensor([[[[50., 50.]]]]),
                gt_kpts_visible=torch.full((1, 1, 1), visible),
                kpt_sigmas=torch.tensor([0.1]))


def test_ota_oks_cost_by_hand():
    """k = floor(0.95 + 0.9) = 1. Box cost alone: -3 log 0.95 = 0.15 < -3 log 0.9 = 0.32, so
    candidate 0. Its keypoint is 40 px off (OKS e^-2: -3 log e^-2 = 6 more), candidate 1's
    exact: with oks_weight 3, candidate 1. A ground truth without a labelled keypoint falls
    back to the IoU, which picks candidate 0 again."""
    case = _one_gt_by_hand(kpt_offsets=(40., 0.))
    pos, _ = YOLOv7OTAAssigner().assign(**case)
    assert pos[0, 0].tolist() == [True, False]
    pos, _ = YOLOv7OTAAssigner(oks_weight=3.).assign(**case)
    assert pos[0, 0].tolist() == [False, True]
    pos, _ = YOLOv7OTAAssigner(oks_weight=3.).assign(**_one_gt_by_hand((40., 0.), visible=0.))
    assert pos[0, 0].tolist() == [True, False]


def test_ota_oks_dynamic_k_by_hand():
    """Three candidates of IoU 0.6: k = floor(1.8) = 1 by IoU. Their keypoints are exact (OKS
    1 each): k = 3 by OKS. Keypoints 40 px off (OKS e^-2 = 0.135 each, sum 0.41): k = 1."""
    exact = _one_gt_by_hand(kpt_offsets=(0., 0., 0.), ious=(0.6, 0.6, 0.6))
    assert YOLOv7OTAAssigner().assign(**exact)[0].sum() == 1
    assert YOLOv7OTAAssigner(dynamic_k_indicator='oks').assign(**exact)[0].sum() == 3
    far = _one_gt_by_hand(kpt_offsets=(40., 40., 40.), ious=(0.6, 0.6, 0.6))
    assert YOLOv7OTAAssigner(dynamic_k_indicator='oks').assign(**far)[0].sum() == 1


def test_ota_oks_needs_keypoints():
    case = _one_gt_by_hand(kpt_offsets=(0., 0.))
    del case['pred_kpts']
    assert YOLOv7OTAAssigner().assign(**dict(case, pred_kpts=None))[0].any()  # not needed
    with pytest.raises(ValueError, match='needs pred_kpts'):
        YOLOv7OTAAssigner(oks_weight=3.).assign(**case)
    with pytest.raises(ValueError, match="dynamic_k_indicator must be 'iou' or 'oks'"):
        YOLOv7OTAAssigner(dynamic_k_indicator='area')
    with pytest.raises(ValueError, match='predicts none'):  # a detection head
        MODELS.build(dict(
            type='YOLOv7Head', img_size=IMG, anchors=ANCHORS,
            head_module=dict(type='YOLOv7HeadModule', num_classes=1, in_channels=[8, 8, 8],
                             featmap_strides=STRIDES),
            assigner=dict(type='YOLOv7OTAAssigner', oks_weight=3.)))


def test_keypoint_head_gives_the_assigner_each_candidates_own_keypoints():
    """The keypoints the head hands the assigner are, for every valid candidate, the ones its
    dense decoding (inference) predicts at that level, anchor and cell; with them the OKS cost
    changes the positives of a random batch, and the losses stay finite."""
    def build(**assigner):
        with DefaultScope.overwrite_default_scope('mmpose'):
            torch.manual_seed(0)
            head = MODELS.build(dict(
                type='YOLOv7KptHead', img_size=IMG, anchors=ANCHORS,
                head_module=dict(type='YOLOv7HeadModule', num_classes=1, num_keypoints=3,
                                 kpt_dim=3, in_channels=[8, 8, 8], featmap_strides=STRIDES),
                kpt_sigmas=[0.1, 0.2, 0.3],
                assigner=dict(type='YOLOv7OTAAssigner', **assigner)))
        head.init_weights()
        return head

    head = build(oks_weight=3.)
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 8, IMG // s, IMG // s, generator=gen) for s in STRIDES]
    with torch.no_grad():  # spread the keypoint predictions so that they differ by candidate
        for conv in head.head_module.kpt_convs:
            conv[-1].weight.normal_(0, 0.3, generator=gen)
    boxes = [torch.tensor([[10., 20., 90., 100.], [60., 40., 150., 120.]]),
             torch.tensor([[30., 30., 70., 110.]])]
    labels = [torch.zeros(2, dtype=torch.long), torch.zeros(1, dtype=torch.long)]
    keypoints = [b[:, None, :2] + torch.rand(len(b), 3, 2, generator=gen)
                 * (b[:, None, 2:] - b[:, None, :2]) for b in boxes]
    gts = head.pack_gts(boxes, labels, keypoints, [torch.ones(len(b), 3) for b in boxes])
    det_maps, kpt_maps = head(feats)
    dets = [head._split_level(m) for m in det_maps]
    kpts = [head.kpt_branch.split_level(m) for m in kpt_maps]

    seen = {}
    assign = head.assigner.assign

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return assign(*args, **kwargs)

    head.assigner.assign = spy
    with_oks = _positives(head.get_targets(dets, gts, kpts))
    dense = head.kpt_branch.decode_dense(kpt_maps, head.featmap_strides)['keypoints']
    cand = head.assigner.get_candidates(gts['bboxes'], gts['valid'],
                                        [tuple(d.shape[2:4]) for d in dets],
                                        head.featmap_strides, head.anchors)
    offsets = [0]
    for d in dets:
        offsets.append(offsets[-1] + d.shape[1] * d.shape[2] * d.shape[3])
    pred = seen['pred_kpts'].view(*cand['valid'].shape, 3, 2)
    checked = 0
    for b, g, level, a, o in cand['valid'].nonzero().tolist():
        x, y = cand['cells'][b, g, level, a, o].tolist()
        height, width = dets[level].shape[2:4]
        flat = offsets[level] + (a * height + y) * width + x
        assert torch.allclose(pred[b, g, level, a, o], dense[b, flat], atol=1e-5)
        checked += 1
    assert checked > 20
    assert torch.equal(seen['gt_kpts'], gts['keypoints'])

    plain = build()
    plain.load_state_dict(head.state_dict())
    assert _positives(plain.get_targets(dets, gts)) != with_oks
    losses = head.loss_by_feat(det_maps, kpt_maps, gts)
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.slow
def test_ota_follows_the_reference_through_a_training_run():
    """A short training run: the tiny keypoint model of ``configs/tiger_kpt_tiny.py`` on 4 real
    tiger frames, 12 SGD steps. At every step the batched OTA picks exactly the per-image
    reference's positives on that step's predictions, so the run's loss curve is the one the
    reference assignment gives (accuracy does not pay for the batching)."""
    from pathlib import Path

    from mmengine.config import Config
    from mmpose.registry import DATASETS
    from mmpose.registry import MODELS as MMPOSE_MODELS
    repo = Path(__file__).resolve().parents[2]
    cfg = Config.fromfile(str(repo / 'configs' / 'tiger_kpt_tiny.py'))
    cfg.model.head.assigner = dict(type='YOLOv7OTAAssigner')  # the recipe's is YOLOv5's
    codec = dict(type='YOLOXPoseAnnotationProcessor', input_size=(256, 256))
    pipeline = [p for p in cfg.val_pipeline if p.type != 'PackPoseInputs'] + [
        dict(type='GenerateTarget', encoder=codec), dict(type='PackPoseInputs')]
    with DefaultScope.overwrite_default_scope('mmpose'):
        dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, pipeline=pipeline,
                                      indices=4))
        samples = [dataset[i] for i in range(4)]
        torch.manual_seed(0)
        model = MMPOSE_MODELS.build(cfg.model)
        model.init_weights()
        model.train()
        data = model.data_preprocessor(dict(inputs=[s['inputs'] for s in samples],
                                            data_samples=[s['data_samples'] for s in samples]),
                                       training=True)
        head = model.head
        labels = [s.gt_instance_labels for s in data['data_samples']]
        boxes = [gt.bboxes.double() for gt in labels]
        classes = [gt.labels.long() for gt in labels]
        anchors = head.anchors.tolist()
        strides = tuple(head.featmap_strides)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        counts, losses = [], []
        for _ in range(12):
            feats = model.extract_feat(data['inputs'])
            det_maps, _ = head(feats)
            dets = [head._split_level(d).detach().double() for d in det_maps]
            gts = head.pack_gts(boxes, classes, [gt.keypoints for gt in labels],
                                [gt.keypoints_visible for gt in labels])
            found = _positives(head.get_targets(dets, gts))
            expected, _ = reference_ota(dets, boxes, classes, anchors=anchors, strides=strides,
                                        num_classes=head.num_classes)
            assert found == expected
            counts.append(sum(found.values()))
            loss = sum(head.loss(feats, data['data_samples']).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert min(counts) >= 4  # every image's tiger has positives at every step
    assert len(set(counts)) > 1  # the positives follow the changing predictions
    assert all(math.isfinite(v) for v in losses)
