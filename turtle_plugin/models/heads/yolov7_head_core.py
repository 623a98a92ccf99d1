"""Logic of the YOLOv7 head, shared by the MMDetection and the MMPose head: decoding, target
assignment, per-level losses and post-processing.

Follows YOLOv7 (Wang et al., CVPR 2023; ``IDetect``, ``ComputeLoss``/``ComputeLossOTA``) and,
for keypoints, YOLO-Pose (Maji et al., CVPR-W 2022; ``IKeypoint``, ``ComputeLoss(kpt_label)``).
The layers are :class:`~turtle_plugin.models.heads.YOLOv7HeadModule`; the keypoint logic is one
component, :class:`~turtle_plugin.models.heads.KptBranch`, absent (``None``) for a detection
model. :class:`YOLOv7HeadCore` is registered nowhere: :class:`~turtle_plugin.models.heads.
YOLOv7Head` (MMDetection) and :class:`~turtle_plugin.models.heads.YOLOv7KptHead` (MMPose) are
its siblings, each adding its framework's ``loss``/``predict``.

Decoding, per anchor ``a`` of a level with stride ``s`` at cell ``(i, j)``::

    x, y = (2 * sigmoid(t_xy) - 0.5 + (i, j)) * s          w, h = (2 * sigmoid(t_wh))^2 * anchor_a

Loss (YOLOv7, ``hyp.scratch.p5``), summed over levels and multiplied by the batch size and the
number of processes as the original does (``loss * bs`` in ``ComputeLoss``,
``loss *= opt.world_size`` in ``train.py``, as DDP averages gradients over processes): the
gradient is that of a per-image *sum* over the total batch, which YOLOv7 pairs with a weight
decay scaled by ``total_batch_size * accumulate / 64``::

    loss_box = 0.05 * 3/nl             * sum_l mean_pos(1 - CIoU)
    loss_obj = 0.7  * (img/640)^2 * 3/nl * sum_l w_l * mean_all BCE(obj, CIoU.clamp(0))
    loss_cls = 0.3  * C/80 * 3/nl      * sum_l mean_pos,class BCE(cls, onehot)  (0 when C == 1)

with ``w = [4.0, 1.0, 0.4]``, plus the keypoint branch's terms (:class:`KptBranch`). The bare
gains are the ``loss_weight`` of each loss config; the ``3/nl``, ``C/80`` and ``(img/640)^2``
factors are applied here when ``scale_loss_weights``, ``img`` being the head's ``img_size``.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.dist import get_world_size
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from turtle_plugin.registry import MODELS, TASK_UTILS
from ..losses import bbox_ciou
from ..task_modules import filter_and_nms
from .kpt_branch import KptBranch
from .utils import at_least_float32, floating, gather_candidates, grid_cells

__all__ = ['YOLOv7HeadCore', 'YOLOV7_P5_ANCHORS']

# YOLOv7's P5 anchors (w, h) in pixels for strides 8, 16, 32 (cfg/training/yolov7.yaml)
YOLOV7_P5_ANCHORS = (
    ((12, 16), (19, 36), (40, 28)),
    ((36, 75), (76, 55), (72, 146)),
    ((142, 110), (192, 243), (459, 401)),
)


class YOLOv7HeadCore(BaseModule):
    """YOLOv7 head logic with an optional YOLO-Pose keypoint branch, in no framework's scope.

    Args:
        head_module (dict): config of the layers, a
            :class:`~turtle_plugin.models.heads.YOLOv7HeadModule`; ``num_classes``,
            ``num_keypoints``, ``kpt_dim`` and ``featmap_strides`` are read from it. It takes
            its ``img_size`` from the head: set ``img_size`` here, not in it.
        img_size (int): training image side. It scales the objectness gain by
            ``(img_size / 640)^2`` (YOLOv7's ``train.py``) and sets the layers' objectness prior.
        anchors (Sequence): per level, ``num_anchors`` anchor ``(w, h)`` pairs in input pixels.
            Defaults to YOLOv7's P5 anchors (for 640 inputs).
        assigner (dict): a ``TASK_UTILS`` assigner with ``get_candidates`` and ``assign``:
            ``YOLOv7OTAAssigner`` (YOLOv7) or ``YOLOv5Assigner`` (YOLO-Pose). One whose
            ``uses_keypoints`` is True (``YOLOv7OTAAssigner(oks_weight=3)``) is also given the
            keypoints predicted at its candidates; it needs a head with keypoints.
        loss_bbox (dict): box loss on xyxy boxes; its ``loss_weight`` is ``hyp['box']``.
        loss_obj (dict): objectness loss on logits; ``loss_weight`` is ``hyp['obj']``.
        loss_cls (dict): class loss on logits; ``loss_weight`` is ``hyp['cls']``.
        loss_kpt (dict): keypoint loss of the keypoint branch (:class:`KptBranch`).
        loss_kpt_vis (dict): keypoint visibility loss of the keypoint branch.
        loss_kpt_aux (dict, optional): auxiliary keypoint loss of the keypoint branch.
        kpt_sigmas (Sequence[float] | dict | str, optional): sigmas of the keypoint branch's
            OKS loss, a metainfo to take them from, or ``'uniform'`` (``1 / K``).
        obj_level_weights (Sequence[float]): objectness weight of each level (YOLOv7's
            ``balance``).
        label_smoothing (float): class targets become ``1 - eps/2`` and ``eps/2``.
        obj_iou_ratio (float): objectness target ``(1 - r) + r * CIoU.clamp(0)`` (YOLOv7's
            ``gr``).
        scale_loss_weights (bool): multiply the gains by YOLOv7's ``3/nl``, ``C/80`` and
            ``(img_size/640)^2`` factors (see the module docstring).
        train_cfg (dict, optional): accepted for the host frameworks' models; the assigner is
            configured by ``assigner``, so this must not hold one.
        test_cfg (dict, optional): post-processing: ``score_thr``, ``nms`` (``iou_threshold``),
            ``nms_pre``, ``max_per_img``, ``multi_label``, ``merge_nms`` (merge-NMS: each kept
            box and its keypoints become the score-weighted mean of the candidates it
            suppressed, :func:`filter_and_nms`); missing keys take ``default_test_cfg``.
        init_cfg (dict | list[dict], optional): MMEngine initialisation config.

    The keypoint arguments are used when ``head_module.num_keypoints > 0``, which builds
    :attr:`kpt_branch`; otherwise ``kpt_branch`` is None.
    """

    default_test_cfg = dict(
        multi_label=True, score_thr=0.001, nms=dict(type='nms', iou_threshold=0.65),
        nms_pre=30000, max_per_img=300, merge_nms=False)

    def __init__(self,
                 head_module: dict,
                 img_size: int = 640,
                 anchors: Sequence = YOLOV7_P5_ANCHORS,
                 assigner: dict = dict(type='YOLOv7OTAAssigner'),
                 loss_bbox: dict = dict(type='YOLOCIoULoss', loss_weight=0.05),
                 loss_obj: dict = dict(type='YOLOBCEWithLogitsLoss', loss_weight=0.7),
                 loss_cls: dict = dict(type='YOLOBCEWithLogitsLoss', loss_weight=0.3),
                 loss_kpt: dict = dict(type='YOLOPoseOKSLoss', loss_weight=0.1),
                 loss_kpt_vis: dict = dict(type='YOLOBCEWithLogitsLoss', loss_weight=0.3),
                 loss_kpt_aux: Optional[dict] = None,
                 kpt_sigmas: Optional[Union[Sequence[float], dict, str]] = None,
                 obj_level_weights: Sequence[float] = (4.0, 1.0, 0.4),
                 label_smoothing: float = 0.0,
                 obj_iou_ratio: float = 1.0,
                 scale_loss_weights: bool = True,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        if train_cfg and 'assigner' in train_cfg:
            raise ValueError(f'train_cfg holds an assigner, but {name} takes its assigner from '
                             f'its own `assigner` argument: move it there')
        if 'img_size' in head_module:
            raise ValueError(f'head_module.img_size is set: the image size is the head\'s '
                             f'(`{name}(img_size=...)`), which passes it to its layers; move it '
                             f'there')
        self.img_size = img_size
        self.head_module = MODELS.build(dict(head_module, img_size=img_size))
        self.num_classes = self.head_module.num_classes
        self.num_keypoints = self.head_module.num_keypoints
        self.kpt_dim = self.head_module.kpt_dim
        self.num_anchors = self.head_module.num_anchors
        self.featmap_strides = self.head_module.featmap_strides
        self.num_levels = self.head_module.num_levels

        anchors = torch.as_tensor(anchors, dtype=torch.float32)
        if anchors.shape != (self.num_levels, self.num_anchors, 2):
            raise ValueError(f'anchors must be {self.num_levels} levels x {self.num_anchors} '
                             f'(w, h) pairs, got shape {tuple(anchors.shape)}')
        # config is the source of truth: anchors are not saved in checkpoints
        self.register_buffer('anchors', anchors, persistent=False)

        if len(obj_level_weights) != self.num_levels:
            raise ValueError(f'{len(obj_level_weights)} obj_level_weights for '
                             f'{self.num_levels} levels')
        self.obj_level_weights = list(obj_level_weights)
        self.cls_pos_target = 1.0 - 0.5 * label_smoothing
        self.cls_neg_target = 0.5 * label_smoothing
        self.obj_iou_ratio = obj_iou_ratio

        self.assigner = TASK_UTILS.build(assigner)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_obj = MODELS.build(loss_obj)
        self.loss_cls = MODELS.build(loss_cls)
        self.kpt_branch = KptBranch(
            self.num_keypoints, self.kpt_dim, self.num_anchors, loss_kpt, loss_kpt_vis,
            loss_kpt_aux, kpt_sigmas) if self.num_keypoints else None
        if getattr(self.assigner, 'uses_keypoints', False) and self.kpt_branch is None:
            raise ValueError(f'{assigner} assigns by keypoints (oks_weight > 0 or '
                             f'dynamic_k_indicator="oks") but the head predicts none: set '
                             f'head_module.num_keypoints or drop the keypoint terms')
        self.loss_scales = self._loss_scales(scale_loss_weights)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def _loss_scales(self, enabled: bool) -> Dict[str, float]:
        """YOLOv7's ``train.py`` scaling of the gains to layers, classes and image size, per
        reported loss, in report order."""
        layers = 3.0 / self.num_levels if enabled else 1.0
        cls = self.num_classes / 80.0 * layers if enabled else 1.0
        obj = (self.img_size / 640.0)**2 * layers if enabled else 1.0
        scales = dict(box=layers, obj=obj, cls=cls)
        if self.kpt_branch is not None:
            scales.update(self.kpt_branch.loss_scales(cls))
        return scales

    def forward(self, feats: Sequence[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Raw maps; see :meth:`YOLOv7HeadModule.forward`."""
        return self.head_module(feats)

    # ----------------------------------------------------------------------------- decoding
    def _split_level(self, det_map: Tensor) -> Tensor:
        """``(B, A*(5+C), H, W)`` -> ``(B, A, H, W, 5+C)``."""
        batch_size, _, height, width = det_map.shape
        det = det_map.view(batch_size, self.num_anchors, -1, height, width)
        return det.permute(0, 1, 3, 4, 2)

    @staticmethod
    def decode_bboxes(raw: Tensor, cells: Tensor, stride: float, anchor_wh: Tensor) -> Tensor:
        """Raw ``(t_x, t_y, t_w, t_h)`` -> xyxy boxes in input pixels.

        Args:
            raw (Tensor): ``(..., 4)`` raw predictions.
            cells (Tensor): ``(..., 2)`` grid cell ``(i, j)`` of each prediction.
            stride (float): the level's stride.
            anchor_wh (Tensor): ``(..., 2)`` anchor sizes in pixels.

        Returns:
            Tensor: ``(..., 4)`` boxes.
        """
        xy = (raw[..., :2].sigmoid() * 2 - 0.5 + cells) * stride
        wh = (raw[..., 2:4].sigmoid() * 2)**2 * anchor_wh
        return torch.cat([xy - wh / 2, xy + wh / 2], dim=-1)

    # ----------------------------------------------------------------------------- loss
    def loss_by_feat(self, det_maps: Sequence[Tensor], kpt_maps: Sequence[Tensor],
                     gts: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """YOLOv7 / YOLO-Pose losses of a batch.

        Args:
            det_maps (Sequence[Tensor]): raw detection maps, one per level.
            kpt_maps (Sequence[Tensor]): raw keypoint maps, one per level (empty without
                keypoints).
            gts (dict[str, Tensor]): padded ground truths from :meth:`pack_gts`.

        Returns:
            dict[str, Tensor]: ``loss_box``, ``loss_obj``, ``loss_cls`` and the keypoint
            branch's (:meth:`KptBranch.loss_scales` names them).
        """
        dets = [at_least_float32(self._split_level(m)) for m in det_maps]
        kpts = [at_least_float32(self.kpt_branch.split_level(m)) for m in kpt_maps]
        targets = self.get_targets(dets, gts, kpts)
        zero = sum(det.sum() for det in dets) * 0  # keeps every loss in the graph
        totals = dict.fromkeys(self.loss_scales, zero)
        for level, (det, target) in enumerate(zip(dets, targets)):
            losses = self._level_losses(level, det, target, gts)
            if self.kpt_branch is not None:
                losses.update(self.kpt_branch.level_losses(
                    kpts[level], target, gts, self.featmap_strides[level]))
            for name, value in losses.items():
                totals[name] = totals[name] + value
        # YOLOv7: loss * batch size * world size (DDP averages the gradients over processes)
        batch_scale = det_maps[0].shape[0] * get_world_size()
        return {f'loss_{name}': total * self.loss_scales[name] * batch_scale
                for name, total in totals.items()}

    def get_targets(self, dets: Sequence[Tensor], gts: Dict[str, Tensor],
                    kpts: Optional[Sequence[Tensor]] = None) -> List[dict]:
        """Assign ground truths to predictions, for the whole batch at once.

        Args:
            dets (Sequence[Tensor]): ``(B, A, H, W, 5 + C)`` raw predictions per level.
            gts (dict[str, Tensor]): padded ground truths from :meth:`pack_gts`.
            kpts (Sequence[Tensor], optional): ``(B, A, H, W, K, D)`` raw keypoint
                predictions per level, for an assigner whose cost holds the keypoints
                (``assigner.uses_keypoints``); not read otherwise.

        Returns:
            list[dict]: per level, over the ``(B, G, A, 5)`` candidates of every ground truth:
            ``cells`` (``(..., 2)`` long), ``pos`` (bool) and ``gt_inds`` (long).
        """
        featmap_sizes = [tuple(det.shape[2:4]) for det in dets]
        candidates = self.assigner.get_candidates(gts['bboxes'], gts['valid'], featmap_sizes,
                                                  self.featmap_strides, self.anchors)
        cells, valid = candidates['cells'], candidates['valid']  # (B, G, L, A, 5, ...)
        with torch.no_grad():
            boxes, scores = [], []
            for level, det in enumerate(dets):
                cand = gather_candidates(det, cells[:, :, level])  # (B, G, A, 5, 5 + C)
                boxes.append(self._decode_candidates(cand, cells[:, :, level], level))
                scores.append((cand[..., 5:].sigmoid() * cand[..., 4:5].sigmoid()).sqrt())
            batch_size, num_gts = valid.shape[:2]
            num_cands = valid.shape[2:].numel()  # L * A * 5 per ground truth
            shape = (batch_size, num_gts, num_cands)
            keypoints = {}
            if getattr(self.assigner, 'uses_keypoints', False):
                keypoints = self._candidate_keypoints(kpts, cells, gts, shape)
            pos, gt_inds = self.assigner.assign(
                torch.stack(boxes, 2).view(*shape, 4),
                torch.stack(scores, 2).view(*shape, self.num_classes), valid.view(shape),
                gts['bboxes'], gts['labels'], gts['valid'], **keypoints)
        pos = pos.view(valid.shape)
        gt_inds = gt_inds.view(valid.shape)
        return [dict(cells=cells[:, :, level], pos=pos[:, :, level], gt_inds=gt_inds[:, :, level])
                for level in range(len(dets))]

    def _candidate_keypoints(self, kpts: Optional[Sequence[Tensor]], cells: Tensor,
                             gts: Dict[str, Tensor], shape: Tuple[int, int, int]) -> dict:
        """The keypoint arguments of ``assigner.assign``: the keypoints predicted at every
        candidate (``(B, G, N, K, 2)``), the ground truths' and the loss's sigmas."""
        if self.kpt_branch is None or kpts is None:
            raise ValueError(f'{type(self.assigner).__name__} assigns by keypoints '
                             f'(oks_weight > 0 or dynamic_k_indicator="oks"), but the head '
                             f'predicts no keypoints')
        decoded = []
        for level, kpt in enumerate(kpts):
            cand = gather_candidates(kpt, cells[:, :, level])  # (B, G, A, 5, K, D)
            decoded.append(self.kpt_branch.decode_keypoints(
                cand, cells[:, :, level].to(cand.dtype), self.featmap_strides[level]))
        return dict(pred_kpts=torch.stack(decoded, 2).view(*shape, self.num_keypoints, 2),
                    gt_kpts=gts['keypoints'], gt_kpts_visible=gts['keypoints_visible'],
                    kpt_sigmas=self.kpt_branch.kpt_sigmas)

    def _decode_candidates(self, cand: Tensor, cells: Tensor, level: int) -> Tensor:
        anchor_wh = self.anchors[level].to(cand.dtype)[None, None, :, None]  # (1, 1, A, 1, 2)
        return self.decode_bboxes(cand[..., :4], cells.to(cand.dtype),
                                  self.featmap_strides[level], anchor_wh)

    def _level_losses(self, level: int, det: Tensor, target: dict,
                      gts: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Unscaled box, objectness and class losses of one level (YOLOv7's per-level means)."""
        cells, pos, gt_inds = target['cells'], target['pos'], target['gt_inds']
        batch_inds = torch.arange(det.shape[0], device=det.device).view(-1, 1, 1, 1)
        num_pos = pos.sum()
        cand = gather_candidates(det, cells)  # (B, G, A, 5, 5 + C)
        pred_boxes = self._decode_candidates(cand, cells, level)
        # non-positives regress onto their own prediction: finite values and gradients
        gt_boxes = torch.where(pos[..., None], gts['bboxes'][batch_inds, gt_inds].to(det.dtype),
                               pred_boxes.detach())
        losses = dict(box=self.loss_bbox(pred_boxes, gt_boxes, weight=pos, avg_factor=num_pos))

        with torch.no_grad():
            iou = bbox_ciou(pred_boxes, gt_boxes).clamp(min=0)
            iou = (1 - self.obj_iou_ratio) + self.obj_iou_ratio * iou
        obj_target = self._objectness_target(det, cells, pos, iou)
        losses['obj'] = self.obj_level_weights[level] * self.loss_obj(det[..., 4], obj_target)

        if self.num_classes > 1:  # YOLOv7 trains no class logit for a single class
            labels = gts['labels'][batch_inds, gt_inds].long()
            cls_target = torch.full_like(cand[..., 5:], self.cls_neg_target)
            cls_target.scatter_(-1, labels[..., None], self.cls_pos_target)
            losses['cls'] = self.loss_cls(cand[..., 5:], cls_target, weight=pos[..., None],
                                          avg_factor=num_pos * self.num_classes)
        return losses

    def _objectness_target(self, det: Tensor, cells: Tensor, pos: Tensor, iou: Tensor) -> Tensor:
        """``(B, A, H, W)`` target: the positives' IoU at their cell, 0 elsewhere. A cell that
        is positive for several ground truths keeps the largest IoU."""
        batch_size, num_anchors, height, width = det.shape[:4]
        batch_inds = torch.arange(batch_size, device=det.device).view(-1, 1, 1, 1)
        anchor_inds = torch.arange(num_anchors, device=det.device).view(1, 1, -1, 1)
        flat = ((batch_inds * num_anchors + anchor_inds) * height + cells[..., 1]) * width \
            + cells[..., 0]
        values = torch.where(pos, iou.to(det.dtype), det.new_zeros(()))
        target = det.new_zeros(batch_size * num_anchors * height * width)
        target.scatter_reduce_(0, flat.flatten(), values.flatten(), 'amax')
        return target.view(batch_size, num_anchors, height, width)

    def pack_gts(self, bboxes: Sequence[Tensor], labels: Sequence[Tensor],
                 keypoints: Optional[Sequence[Tensor]] = None,
                 keypoints_visible: Optional[Sequence[Tensor]] = None) -> Dict[str, Tensor]:
        """Pad per-image ground truths to one ``(B, G, ...)`` batch with a ``valid`` mask.

        Args:
            bboxes (Sequence[Tensor]): per image ``(n_i, 4)`` xyxy boxes in input pixels.
            labels (Sequence[Tensor]): per image ``(n_i,)`` labels in ``[0, C)``.
            keypoints (Sequence[Tensor], optional): per image ``(n_i, K, 2)``; required when
                the head predicts keypoints.
            keypoints_visible (Sequence[Tensor], optional): per image ``(n_i, K)``, > 0 where
                a keypoint is labelled; all visible when omitted.

        Returns:
            dict[str, Tensor]: ``bboxes`` ``(B, G, 4)``, ``labels`` ``(B, G)``, ``valid``
            ``(B, G)`` and, with keypoints, ``keypoints`` ``(B, G, K, 2)`` and
            ``keypoints_visible`` ``(B, G, K)``; ``G`` is the largest ``n_i``.
        """
        counts = [len(b) for b in bboxes]
        device = bboxes[0].device
        gts = dict(
            bboxes=pad_sequence([floating(b.reshape(-1, 4)) for b in bboxes], batch_first=True),
            labels=pad_sequence([lb.reshape(-1).long() for lb in labels], batch_first=True),
            valid=pad_sequence([torch.ones(n, dtype=torch.bool, device=device) for n in counts],
                               batch_first=True))
        for count, lb in zip(counts, labels):
            if lb.numel() != count:
                raise ValueError(f'an image has {count} boxes but {lb.numel()} labels')
        if self.kpt_branch is not None:
            gts.update(self.kpt_branch.pack_gts(keypoints, keypoints_visible, counts))
        return gts

    # ----------------------------------------------------------------------------- predict
    def predict_by_feat(self, det_maps: Sequence[Tensor], kpt_maps: Sequence[Tensor],
                        cfg: Optional[dict] = None) -> List[InstanceData]:
        """Decode, filter and NMS the predictions of each image, in network-input pixels.

        Args:
            det_maps (Sequence[Tensor]): raw detection maps, one per level.
            kpt_maps (Sequence[Tensor]): raw keypoint maps, one per level (empty without
                keypoints).
            cfg (dict, optional): post-processing config; missing keys come from
                ``default_test_cfg``.

        Returns:
            list[InstanceData]: per image ``bboxes`` ``(n, 4)``, ``scores`` ``(n,)``,
            ``labels`` ``(n,)`` and, with keypoints, ``keypoints`` ``(n, K, 2)`` and
            ``keypoint_scores`` ``(n, K)`` (visibility probability when ``kpt_dim == 3``,
            else 1).
        """
        return self._nms_each(*self._decode_dense(det_maps, kpt_maps), self._test_cfg(cfg))

    def predict_flip_by_feat(self, det_maps: Sequence[Tensor], kpt_maps: Sequence[Tensor],
                             flip_det_maps: Sequence[Tensor], flip_kpt_maps: Sequence[Tensor],
                             flip_indices: Sequence[int],
                             cfg: Optional[dict] = None) -> List[InstanceData]:
        """Flip test: the predictions of the images and of their horizontal mirrors, averaged
        anchor by anchor before the score filter and the NMS.

        The mirror image's anchor ``a`` at cell ``(i, j)`` sees what the image's anchor ``a``
        sees at cell ``(W - 1 - i, j)`` (the anchors are symmetric), so its decoded box, scores,
        keypoints and keypoint scores are mapped back (``x -> W_in - x``, ``W_in`` the input
        width; keypoint ``k`` read from its mirror partner ``flip_indices[k]``) and averaged
        with that anchor's -- as heatmap models average the two heatmaps. A network that is
        exactly mirror-equivariant gives the plain prediction back.

        Args:
            det_maps, kpt_maps (Sequence[Tensor]): raw maps of the images, one per level.
            flip_det_maps, flip_kpt_maps (Sequence[Tensor]): raw maps of the mirrored images
                (``inputs.flip(-1)``), same shapes.
            flip_indices (Sequence[int]): mirror partner of each keypoint (the dataset
                metainfo's ``flip_indices``); ignored without keypoints.
            cfg (dict, optional): post-processing config, as :meth:`predict_by_feat`.

        Returns:
            list[InstanceData]: as :meth:`predict_by_feat`, in the images' input pixels.
        """
        for level, (det_map, flip_map) in enumerate(zip(det_maps, flip_det_maps)):
            if det_map.shape != flip_map.shape:
                raise ValueError(f'flip test: level {level} has maps of shape '
                                 f'{tuple(det_map.shape)} and {tuple(flip_map.shape)} for the '
                                 f'mirrored images')
        widths = {det_map.shape[-1] * stride
                  for det_map, stride in zip(det_maps, self.featmap_strides)}
        if len(widths) != 1:
            raise ValueError(f'flip test: the levels span different input widths {widths}; '
                             f'pad the input to a multiple of the largest stride')
        width = widths.pop()
        bboxes, scores, extras = self._decode_dense(det_maps, kpt_maps)
        flip_bboxes, flip_scores, flip_extras = self._decode_dense(flip_det_maps, flip_kpt_maps)
        mirror = self._mirror_order(det_maps)
        flip_bboxes = flip_bboxes[:, mirror]
        flip_bboxes = torch.stack([width - flip_bboxes[..., 2], flip_bboxes[..., 1],
                                   width - flip_bboxes[..., 0], flip_bboxes[..., 3]], dim=-1)
        bboxes = (bboxes + flip_bboxes) / 2
        scores = (scores + flip_scores[:, mirror]) / 2
        if extras:
            partner = torch.as_tensor(list(flip_indices), dtype=torch.long,
                                      device=bboxes.device)
            if partner.numel() != self.num_keypoints or \
                    not torch.equal(partner.sort().values, torch.arange(
                        self.num_keypoints, device=partner.device)):
                raise ValueError(f'flip test: flip_indices {list(flip_indices)} is not a '
                                 f'permutation of the head\'s {self.num_keypoints} keypoints')
            keypoints = flip_extras['keypoints'][:, mirror][:, :, partner]
            keypoints = torch.stack([width - keypoints[..., 0], keypoints[..., 1]], dim=-1)
            extras = dict(
                keypoints=(extras['keypoints'] + keypoints) / 2,
                keypoint_scores=(extras['keypoint_scores']
                                 + flip_extras['keypoint_scores'][:, mirror][:, :, partner]) / 2)
        return self._nms_each(bboxes, scores, extras, self._test_cfg(cfg))

    def _mirror_order(self, det_maps: Sequence[Tensor]) -> Tensor:
        """For the dense order of :meth:`_decode_dense` (level, anchor, row, column), the
        index of each prediction's mirror image: same level, anchor and row, column
        ``W - 1 - i``."""
        order, start = [], 0
        for det_map in det_maps:
            height, width = det_map.shape[-2:]
            count = self.num_anchors * height * width
            index = torch.arange(start, start + count, device=det_map.device)
            order.append(index.view(self.num_anchors, height, width).flip(-1).reshape(-1))
            start += count
        return torch.cat(order)

    def _nms_each(self, bboxes: Tensor, scores: Tensor, extras: Dict[str, Tensor],
                  cfg: dict) -> List[InstanceData]:
        """Score filter and NMS of each image's dense predictions."""
        results = []
        for i in range(bboxes.shape[0]):
            kept = filter_and_nms(
                bboxes[i], scores[i], score_thr=cfg['score_thr'],
                iou_threshold=cfg['nms']['iou_threshold'], max_per_img=cfg['max_per_img'],
                nms_pre=cfg.get('nms_pre', -1), multi_label=cfg['multi_label'],
                merge=cfg['merge_nms'],
                extras={name: value[i] for name, value in extras.items()})
            results.append(InstanceData(**kept))
        return results

    def _test_cfg(self, cfg: Optional[dict]) -> dict:
        merged = copy.deepcopy(self.default_test_cfg)
        merged.update(copy.deepcopy(dict(self.test_cfg or {})))
        merged.update(copy.deepcopy(dict(cfg or {})))
        return merged

    @torch.no_grad()
    def _decode_dense(self, det_maps: Sequence[Tensor], kpt_maps: Sequence[Tensor]
                      ) -> Tuple[Tensor, Tensor, Dict[str, Tensor]]:
        """All predictions of all levels: boxes ``(B, N, 4)``, scores ``(B, N, C)`` and the
        keypoint branch's ``keypoints`` ``(B, N, K, 2)`` / ``keypoint_scores`` ``(B, N, K)``."""
        bboxes, scores = [], []
        for level, det_map in enumerate(det_maps):
            det = self._split_level(det_map)
            batch_size, _, height, width = det.shape[:4]
            cells = grid_cells(height, width, det)  # (H, W, 2)
            anchor_wh = self.anchors[level].to(det.dtype).view(1, -1, 1, 1, 2)
            bboxes.append(self.decode_bboxes(det[..., :4], cells, self.featmap_strides[level],
                                             anchor_wh).reshape(batch_size, -1, 4))
            scores.append((det[..., 5:].sigmoid() * det[..., 4:5].sigmoid())
                          .reshape(batch_size, -1, self.num_classes))
        extras = {} if self.kpt_branch is None else \
            self.kpt_branch.decode_dense(kpt_maps, self.featmap_strides)
        return torch.cat(bboxes, 1), torch.cat(scores, 1), extras
