"""Logic of the YOLOv7 head: decoding, target assignment, losses and post-processing.

Follows YOLOv7 (Wang et al., CVPR 2023; ``IDetect``, ``ComputeLoss``/``ComputeLossOTA``) and,
for keypoints, YOLO-Pose (Maji et al., CVPR-W 2022; ``IKeypoint``, ``ComputeLoss(kpt_label)``).
The layers are :class:`~turtle_plugin.models.heads.YOLOv7HeadModule`. This class also carries the
MMDetection glue (``loss``/``predict`` on ``DetDataSample``); the MMPose glue is
:class:`~turtle_plugin.models.heads.YOLOv7KptHead`, which shares everything else.

Decoding, per anchor ``a`` of a level with stride ``s`` at cell ``(i, j)``::

    x, y = (2 * sigmoid(t_xy) - 0.5 + (i, j)) * s          w, h = (2 * sigmoid(t_wh))^2 * anchor_a
    kpt_x, kpt_y = (2 * t_kpt - 0.5 + (i, j)) * s  (raw, no sigmoid)     kpt_vis = sigmoid(t_vis)

Loss (YOLOv7, ``hyp.scratch.p5`` + ``hyp.pose``), summed over levels and multiplied by the
batch size and the number of processes as the original does (``loss * bs`` in ``ComputeLoss``,
``loss *= opt.world_size`` in ``train.py``, as DDP averages gradients over processes): the
gradient is that of a per-image *sum* over the total batch, which YOLOv7 pairs with a weight
decay scaled by ``total_batch_size * accumulate / 64``::

    loss_box = 0.05 * 3/nl             * sum_l mean_pos(1 - CIoU)
    loss_obj = 0.7  * (img/640)^2 * 3/nl * sum_l w_l * mean_all BCE(obj, CIoU.clamp(0))
    loss_cls = 0.3  * C/80 * 3/nl      * sum_l mean_pos,class BCE(cls, onehot)  (0 when C == 1)
    loss_kpt = 0.10                    * sum_l mean_visible (1 - OKS)
    loss_kpt_vis = 0.3 * C/80 * 3/nl   * sum_l mean_pos,kpt BCE(vis, visible)   (kpt_dim == 3)
    loss_kpt_aux = w_aux               * sum_l mean_visible (|dx| + |dy|) / sqrt(area)  (optional)

with ``w = [4.0, 1.0, 0.4]``. The bare gains are the ``loss_weight`` of each loss config; the
``3/nl``, ``C/80`` and ``(img/640)^2`` factors are applied here when ``scale_loss_weights``.
"""
import copy
import warnings
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

__all__ = ['YOLOv7Head', 'YOLOV7_P5_ANCHORS']

# YOLOv7's P5 anchors (w, h) in pixels for strides 8, 16, 32 (cfg/training/yolov7.yaml)
YOLOV7_P5_ANCHORS = (
    ((12, 16), (19, 36), (40, 28)),
    ((36, 75), (76, 55), (72, 146)),
    ((142, 110), (192, 243), (459, 401)),
)


@MODELS.register_module()
class YOLOv7Head(BaseModule):
    """YOLOv7 detection head with an optional YOLO-Pose keypoint branch (MMDetection scope).

    Args:
        head_module (dict): config of the layers, a
            :class:`~turtle_plugin.models.heads.YOLOv7HeadModule`; ``num_classes``,
            ``num_keypoints``, ``kpt_dim``, ``featmap_strides`` and ``img_size`` are read from it.
        anchors (Sequence): per level, ``num_anchors`` anchor ``(w, h)`` pairs in input pixels.
            Defaults to YOLOv7's P5 anchors (for 640 inputs).
        assigner (dict): a ``TASK_UTILS`` assigner with ``get_candidates`` and ``assign``:
            ``YOLOv7OTAAssigner`` (YOLOv7) or ``YOLOv5Assigner`` (YOLO-Pose).
        loss_bbox (dict): box loss on xyxy boxes; its ``loss_weight`` is ``hyp['box']``.
        loss_obj (dict): objectness loss on logits; ``loss_weight`` is ``hyp['obj']``.
        loss_cls (dict): class loss on logits; ``loss_weight`` is ``hyp['cls']``.
        loss_kpt (dict): keypoint loss (``YOLOPoseOKSLoss``); ``loss_weight`` is ``hyp['kpt']``.
        loss_kpt_vis (dict): keypoint visibility loss on logits, used when ``kpt_dim == 3``;
            YOLO-Pose reuses ``hyp['cls']`` for it.
        loss_kpt_aux (dict, optional): an auxiliary keypoint loss beside ``loss_kpt`` taking
            ``(pred, target, visible, areas, weight=)``, e.g. ``KptScaledL1Loss``, whose
            gradient does not vanish far from the target as ``1 - OKS``'s does. ``None`` (the
            original YOLO-Pose): no such term.
        kpt_sigmas (Sequence[float] | dict, optional): per-keypoint OKS sigmas, or the dataset's
            metainfo (``dict(from_file='configs/_base_/datasets/turtle.py')``) to take its
            ``sigmas`` from. ``None`` uses ``1 / K`` for every keypoint (Ultralytics' fallback)
            and warns.
        obj_level_weights (Sequence[float]): objectness weight of each level (YOLOv7's
            ``balance``).
        label_smoothing (float): class targets become ``1 - eps/2`` and ``eps/2``.
        obj_iou_ratio (float): objectness target ``(1 - r) + r * CIoU.clamp(0)`` (YOLOv7's
            ``gr``).
        scale_loss_weights (bool): multiply the gains by YOLOv7's ``3/nl``, ``C/80`` and
            ``(img_size/640)^2`` factors (see the module docstring).
        train_cfg (dict, optional): accepted for MMDetection's detectors; the assigner is
            configured by ``assigner``, so this must not hold one.
        test_cfg (dict, optional): post-processing: ``score_thr``, ``nms`` (``iou_threshold``),
            ``nms_pre``, ``max_per_img``, ``multi_label``; missing keys take
            ``default_test_cfg``.
        init_cfg (dict | list[dict], optional): MMEngine initialisation config.
    """

    default_test_cfg = dict(
        multi_label=True, score_thr=0.001, nms=dict(type='nms', iou_threshold=0.65),
        nms_pre=30000, max_per_img=300)

    def __init__(self,
                 head_module: dict,
                 anchors: Sequence = YOLOV7_P5_ANCHORS,
                 assigner: dict = dict(type='YOLOv7OTAAssigner'),
                 loss_bbox: dict = dict(type='YOLOCIoULoss', loss_weight=0.05),
                 loss_obj: dict = dict(type='YOLOBCEWithLogitsLoss', loss_weight=0.7),
                 loss_cls: dict = dict(type='YOLOBCEWithLogitsLoss', loss_weight=0.3),
                 loss_kpt: dict = dict(type='YOLOPoseOKSLoss', loss_weight=0.1),
                 loss_kpt_vis: dict = dict(type='YOLOBCEWithLogitsLoss', loss_weight=0.3),
                 loss_kpt_aux: Optional[dict] = None,
                 kpt_sigmas: Optional[Sequence[float]] = None,
                 obj_level_weights: Sequence[float] = (4.0, 1.0, 0.4),
                 label_smoothing: float = 0.0,
                 obj_iou_ratio: float = 1.0,
                 scale_loss_weights: bool = True,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if train_cfg and 'assigner' in train_cfg:
            raise ValueError('train_cfg holds an assigner, but YOLOv7Head takes its assigner '
                             'from its own `assigner` argument: move it there')
        self.head_module = MODELS.build(head_module)
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
        # config is the source of truth: anchors and sigmas are not saved in checkpoints
        self.register_buffer('anchors', anchors, persistent=False)
        self.register_buffer('kpt_sigmas', self._check_sigmas(kpt_sigmas), persistent=False)

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
        self.loss_kpt = MODELS.build(loss_kpt) if self.num_keypoints else None
        self.loss_kpt_vis = MODELS.build(loss_kpt_vis) if self.num_keypoints else None
        self.loss_kpt_aux = MODELS.build(loss_kpt_aux) \
            if loss_kpt_aux and self.num_keypoints else None
        self.loss_scales = self._loss_scales(scale_loss_weights)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def _check_sigmas(self, kpt_sigmas: Optional[Union[Sequence[float], dict]]) -> Tensor:
        num_keypoints = self.num_keypoints
        if isinstance(kpt_sigmas, dict):
            # a dataset metainfo (``dict(from_file=...)`` or a full dataset_info): its sigmas
            from mmpose.datasets.datasets.utils import parse_pose_metainfo
            source = kpt_sigmas.get('from_file', 'the metainfo dict')
            kpt_sigmas = parse_pose_metainfo(dict(kpt_sigmas))['sigmas']
            if len(kpt_sigmas) != num_keypoints:
                raise ValueError(f'the metainfo {source} has {len(kpt_sigmas)} keypoints but the '
                                 f'head predicts {num_keypoints}')
        if kpt_sigmas is None:
            if num_keypoints:
                warnings.warn(
                    f'YOLOv7Head: no kpt_sigmas given, the OKS loss uses 1/K = '
                    f'{1 / num_keypoints:.3f} for all {num_keypoints} keypoints. Pass the '
                    f"dataset metainfo's `sigmas` as `kpt_sigmas`.", UserWarning)
            return torch.full((num_keypoints, ), 1.0 / max(num_keypoints, 1))
        sigmas = torch.as_tensor(kpt_sigmas, dtype=torch.float32).flatten()
        if sigmas.numel() != num_keypoints:
            raise ValueError(f'kpt_sigmas has {sigmas.numel()} entries but the head predicts '
                             f'{num_keypoints} keypoints')
        if (sigmas <= 0).any():
            raise ValueError(f'kpt_sigmas must be positive, got {sigmas.tolist()}')
        return sigmas

    def _loss_scales(self, enabled: bool) -> Dict[str, float]:
        """YOLOv7's ``train.py`` scaling of the gains to layers, classes and image size."""
        if not enabled:
            return dict(box=1.0, obj=1.0, cls=1.0, kpt=1.0, kpt_vis=1.0, kpt_aux=1.0)
        layers = 3.0 / self.num_levels
        cls = self.num_classes / 80.0 * layers
        return dict(box=layers, obj=(self.head_module.img_size / 640.0)**2 * layers, cls=cls,
                    kpt=1.0, kpt_vis=cls, kpt_aux=1.0)

    def forward(self, feats: Sequence[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Raw maps; see :meth:`YOLOv7HeadModule.forward`."""
        return self.head_module(feats)

    # ----------------------------------------------------------------------------- decoding
    def _split_level(self, det_map: Tensor,
                     kpt_map: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        """``(B, A*(5+C), H, W)`` -> ``(B, A, H, W, 5+C)``; ``(B, A*K*D, H, W)`` ->
        ``(B, A, H, W, K, D)``."""
        batch_size, _, height, width = det_map.shape
        det = det_map.view(batch_size, self.num_anchors, -1, height, width)
        det = det.permute(0, 1, 3, 4, 2)
        if kpt_map is None:
            return det, None
        kpt = kpt_map.view(batch_size, self.num_anchors, self.num_keypoints, self.kpt_dim,
                           height, width)
        return det, kpt.permute(0, 1, 4, 5, 2, 3)

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

    @staticmethod
    def decode_keypoints(raw: Tensor, cells: Tensor, stride: float) -> Tensor:
        """Raw keypoint offsets -> keypoints in input pixels (YOLO-Pose: no sigmoid).

        Args:
            raw (Tensor): ``(..., K, D)`` raw predictions; the first two values are x, y.
            cells (Tensor): ``(..., 2)`` grid cell ``(i, j)`` of each prediction.
            stride (float): the level's stride.

        Returns:
            Tensor: ``(..., K, 2)`` keypoints.
        """
        return (raw[..., :2] * 2 - 0.5 + cells[..., None, :]) * stride

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
            dict[str, Tensor]: ``loss_box``, ``loss_obj``, ``loss_cls`` and, with keypoints,
            ``loss_kpt`` (and ``loss_kpt_vis`` when ``kpt_dim == 3``, ``loss_kpt_aux`` when
            the head has one).
        """
        levels = [self._split_level(d, k) for d, k in
                  zip(det_maps, kpt_maps if self.num_keypoints else [None] * len(det_maps))]
        levels = [tuple(_at_least_float32(t) for t in level) for level in levels]
        targets = self.get_targets([det for det, _ in levels], gts)
        batch_size = det_maps[0].shape[0]
        zero = sum(det.sum() for det, _ in levels) * 0  # keeps every loss in the graph
        totals = dict(box=zero, obj=zero, cls=zero, kpt=zero, kpt_vis=zero, kpt_aux=zero)
        for level, ((det, kpt), target) in enumerate(zip(levels, targets)):
            for name, value in self._level_losses(level, det, kpt, target, gts).items():
                totals[name] = totals[name] + value

        losses = dict(loss_box=totals['box'], loss_obj=totals['obj'], loss_cls=totals['cls'])
        if self.num_keypoints:
            losses['loss_kpt'] = totals['kpt']
            if self.kpt_dim == 3:
                losses['loss_kpt_vis'] = totals['kpt_vis']
            if self.loss_kpt_aux is not None:
                losses['loss_kpt_aux'] = totals['kpt_aux']
        scale = dict(loss_box='box', loss_obj='obj', loss_cls='cls', loss_kpt='kpt',
                     loss_kpt_vis='kpt_vis', loss_kpt_aux='kpt_aux')
        # YOLOv7: loss * batch size * world size (DDP averages the gradients over processes)
        batch_scale = batch_size * get_world_size()
        return {name: value * self.loss_scales[scale[name]] * batch_scale
                for name, value in losses.items()}

    def get_targets(self, dets: Sequence[Tensor], gts: Dict[str, Tensor]) -> List[dict]:
        """Assign ground truths to predictions, for the whole batch at once.

        Args:
            dets (Sequence[Tensor]): ``(B, A, H, W, 5 + C)`` raw predictions per level.
            gts (dict[str, Tensor]): padded ground truths from :meth:`pack_gts`.

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
                cand = self._gather(det, cells[:, :, level])  # (B, G, A, 5, 5 + C)
                boxes.append(self._decode_candidates(cand, cells[:, :, level], level))
                scores.append((cand[..., 5:].sigmoid() * cand[..., 4:5].sigmoid()).sqrt())
            batch_size, num_gts = valid.shape[:2]
            num_cands = valid.shape[2:].numel()  # L * A * 5 per ground truth
            shape = (batch_size, num_gts, num_cands)
            pos, gt_inds = self.assigner.assign(
                torch.stack(boxes, 2).view(*shape, 4),
                torch.stack(scores, 2).view(*shape, self.num_classes), valid.view(shape),
                gts['bboxes'], gts['labels'], gts['valid'])
        pos = pos.view(valid.shape)
        gt_inds = gt_inds.view(valid.shape)
        return [dict(cells=cells[:, :, level], pos=pos[:, :, level], gt_inds=gt_inds[:, :, level])
                for level in range(len(dets))]

    def _gather(self, level_pred: Tensor, cells: Tensor) -> Tensor:
        """Predictions ``(B, A, H, W, ...)`` at candidate cells ``(B, G, A, 5, 2)`` ->
        ``(B, G, A, 5, ...)``."""
        batch_size = level_pred.shape[0]
        batch_inds = torch.arange(batch_size, device=cells.device).view(-1, 1, 1, 1)
        anchor_inds = torch.arange(self.num_anchors, device=cells.device).view(1, 1, -1, 1)
        return level_pred[batch_inds, anchor_inds, cells[..., 1], cells[..., 0]]

    def _decode_candidates(self, cand: Tensor, cells: Tensor, level: int) -> Tensor:
        anchor_wh = self.anchors[level].to(cand.dtype)[None, None, :, None]  # (1, 1, A, 1, 2)
        return self.decode_bboxes(cand[..., :4], cells.to(cand.dtype),
                                  self.featmap_strides[level], anchor_wh)

    def _level_losses(self, level: int, det: Tensor, kpt: Optional[Tensor], target: dict,
                      gts: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Unscaled losses of one level (YOLOv7's per-level means)."""
        cells, pos, gt_inds = target['cells'], target['pos'], target['gt_inds']
        batch_inds = torch.arange(det.shape[0], device=det.device).view(-1, 1, 1, 1)
        num_pos = pos.sum()
        cand = self._gather(det, cells)  # (B, G, A, 5, 5 + C)
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
        if kpt is not None:
            losses.update(self._keypoint_losses(level, kpt, cells, pos, gt_inds, gts))
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

    def _keypoint_losses(self, level: int, kpt: Tensor, cells: Tensor, pos: Tensor,
                         gt_inds: Tensor, gts: Dict[str, Tensor]) -> Dict[str, Tensor]:
        batch_inds = torch.arange(kpt.shape[0], device=kpt.device).view(-1, 1, 1, 1)
        cand = self._gather(kpt, cells)  # (B, G, A, 5, K, D)
        pred_kpts = self.decode_keypoints(cand, cells.to(cand.dtype), self.featmap_strides[level])
        gt_kpts = gts['keypoints'][batch_inds, gt_inds].to(cand.dtype)  # (B, G, A, 5, K, 2)
        visible = gts['keypoints_visible'][batch_inds, gt_inds] > 0  # (B, G, A, 5, K)
        boxes = gts['bboxes'][batch_inds, gt_inds].to(cand.dtype)
        areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        losses = dict(kpt=self.loss_kpt(pred_kpts, gt_kpts, visible, areas,
                                        self.kpt_sigmas.to(cand.dtype), weight=pos))
        if self.loss_kpt_aux is not None:
            losses['kpt_aux'] = self.loss_kpt_aux(pred_kpts, gt_kpts, visible, areas, weight=pos)
        if self.kpt_dim == 3:
            losses['kpt_vis'] = self.loss_kpt_vis(
                cand[..., 2], visible.to(cand.dtype), weight=pos[..., None],
                avg_factor=pos.sum() * self.num_keypoints)
        return losses

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
            bboxes=pad_sequence([_floating(b.reshape(-1, 4)) for b in bboxes], batch_first=True),
            labels=pad_sequence([lb.reshape(-1).long() for lb in labels], batch_first=True),
            valid=pad_sequence([torch.ones(n, dtype=torch.bool, device=device) for n in counts],
                               batch_first=True))
        for count, lb in zip(counts, labels):
            if lb.numel() != count:
                raise ValueError(f'an image has {count} boxes but {lb.numel()} labels')
        if self.num_keypoints:
            if keypoints is None:
                raise ValueError(f'the head predicts {self.num_keypoints} keypoints but the '
                                 f'ground truth has no keypoints')
            if keypoints_visible is None:
                keypoints_visible = [k.new_ones(k.shape[:-1]) for k in keypoints]
            for kpts, count in zip(keypoints, counts):
                if tuple(kpts.shape[1:]) != (self.num_keypoints, 2) or len(kpts) != count:
                    raise ValueError(f'ground-truth keypoints of shape {tuple(kpts.shape)} '
                                     f'for {count} boxes; expected ({count}, '
                                     f'{self.num_keypoints}, 2)')
            gts['keypoints'] = pad_sequence([_floating(k) for k in keypoints], batch_first=True)
            gts['keypoints_visible'] = pad_sequence(
                [v.reshape(len(v), self.num_keypoints).float() for v in keypoints_visible],
                batch_first=True)
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
        cfg = self._test_cfg(cfg)
        bboxes, scores, extras = self._decode_dense(det_maps, kpt_maps)
        results = []
        for i in range(bboxes.shape[0]):
            kept = filter_and_nms(
                bboxes[i], scores[i], score_thr=cfg['score_thr'],
                iou_threshold=cfg['nms']['iou_threshold'], max_per_img=cfg['max_per_img'],
                nms_pre=cfg.get('nms_pre', -1), multi_label=cfg['multi_label'],
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
        """All predictions of all levels: boxes ``(B, N, 4)``, scores ``(B, N, C)`` and
        ``keypoints`` ``(B, N, K, 2)`` / ``keypoint_scores`` ``(B, N, K)``."""
        bboxes, scores, keypoints, kpt_scores = [], [], [], []
        kpt_maps = kpt_maps if self.num_keypoints else [None] * len(det_maps)
        for level, (det_map, kpt_map) in enumerate(zip(det_maps, kpt_maps)):
            det, kpt = self._split_level(det_map, kpt_map)
            batch_size, _, height, width = det.shape[:4]
            cells = _grid(height, width, det)  # (H, W, 2)
            anchor_wh = self.anchors[level].to(det.dtype).view(1, -1, 1, 1, 2)
            stride = self.featmap_strides[level]
            bboxes.append(self.decode_bboxes(det[..., :4], cells, stride, anchor_wh)
                          .reshape(batch_size, -1, 4))
            scores.append((det[..., 5:].sigmoid() * det[..., 4:5].sigmoid())
                          .reshape(batch_size, -1, self.num_classes))
            if kpt is not None:
                keypoints.append(self.decode_keypoints(kpt, cells, stride)
                                 .reshape(batch_size, -1, self.num_keypoints, 2))
                vis = kpt[..., 2].sigmoid() if self.kpt_dim == 3 else torch.ones_like(kpt[..., 0])
                kpt_scores.append(vis.reshape(batch_size, -1, self.num_keypoints))
        extras = {}
        if keypoints:
            extras = dict(keypoints=torch.cat(keypoints, 1),
                          keypoint_scores=torch.cat(kpt_scores, 1))
        return torch.cat(bboxes, 1), torch.cat(scores, 1), extras

    # ----------------------------------------------------------------------------- MMDetection
    def loss(self, x: Sequence[Tensor], batch_data_samples: list) -> Dict[str, Tensor]:
        """MMDetection: losses from neck features and ``DetDataSample`` ground truths.

        Args:
            x (Sequence[Tensor]): neck features, one per level.
            batch_data_samples (list[DetDataSample]): with ``gt_instances.bboxes`` (xyxy,
                ``HorizontalBoxes`` or Tensor, input pixels) and ``gt_instances.labels``; and
                ``gt_instances.keypoints`` (+ ``keypoints_visible``) when the head predicts
                keypoints.

        Returns:
            dict[str, Tensor]: see :meth:`loss_by_feat`.
        """
        det_maps, kpt_maps = self(x)
        instances = [sample.gt_instances for sample in batch_data_samples]
        bboxes = [getattr(inst.bboxes, 'tensor', inst.bboxes) for inst in instances]
        keypoints = visible = None
        if self.num_keypoints:
            if not all('keypoints' in inst for inst in instances):
                raise ValueError(f'the head predicts {self.num_keypoints} keypoints but '
                                 f'gt_instances has no `keypoints`')
            keypoints = [inst.keypoints for inst in instances]
            visible = [inst.keypoints_visible if 'keypoints_visible' in inst else
                       inst.keypoints.new_ones(inst.keypoints.shape[:-1]) for inst in instances]
        gts = self.pack_gts(bboxes, [inst.labels for inst in instances], keypoints, visible)
        return self.loss_by_feat(det_maps, kpt_maps, gts)

    def predict(self, x: Sequence[Tensor], batch_data_samples: list,
                rescale: bool = False) -> List[InstanceData]:
        """MMDetection: predictions per image.

        Args:
            x (Sequence[Tensor]): neck features, one per level.
            batch_data_samples (list[DetDataSample]): their metainfo gives ``scale_factor``
                ``(w, h)``, ``ori_shape`` and, after a letterbox, ``pad_param``
                ``(top, bottom, left, right)``.
            rescale (bool): map boxes (and keypoints) back to the original image: remove the
                letterbox padding, divide by ``scale_factor``, clip to ``ori_shape``.

        Returns:
            list[InstanceData]: ``bboxes``, ``scores``, ``labels`` (+ ``keypoints``,
            ``keypoint_scores``).
        """
        det_maps, kpt_maps = self(x)
        results = self.predict_by_feat(det_maps, kpt_maps)
        if rescale:
            results = [self._rescale(res, sample.metainfo)
                       for res, sample in zip(results, batch_data_samples)]
        return results

    @staticmethod
    def _rescale(results: InstanceData, meta: dict) -> InstanceData:
        bboxes = results.bboxes
        pad = meta.get('pad_param')
        shift = bboxes.new_tensor([pad[2], pad[0]]) if pad is not None else bboxes.new_zeros(2)
        scale = bboxes.new_tensor(meta.get('scale_factor', (1.0, 1.0)))
        height, width = meta['ori_shape'][:2]
        bboxes = ((bboxes.view(-1, 2, 2) - shift) / scale).view(-1, 4)
        results.bboxes = torch.stack([bboxes[:, 0].clamp(0, width), bboxes[:, 1].clamp(0, height),
                                      bboxes[:, 2].clamp(0, width), bboxes[:, 3].clamp(0, height)],
                                     dim=1)
        if 'keypoints' in results:
            results.keypoints = (results.keypoints - shift) / scale
        return results


def _grid(height: int, width: int, like: Tensor) -> Tensor:
    """``(H, W, 2)`` cell coordinates ``(i, j)`` on ``like``'s device and dtype."""
    ys, xs = torch.meshgrid(torch.arange(height, device=like.device, dtype=like.dtype),
                            torch.arange(width, device=like.device, dtype=like.dtype),
                            indexing='ij')
    return torch.stack([xs, ys], dim=-1)


def _floating(tensor: Tensor) -> Tensor:
    """Integer tensors become float32; floating tensors keep their dtype."""
    return tensor if tensor.is_floating_point() else tensor.float()


def _at_least_float32(tensor: Optional[Tensor]) -> Optional[Tensor]:
    """Half-precision maps are lifted to float32 for the loss; float64 stays float64."""
    if tensor is None or tensor.dtype in (torch.float32, torch.float64):
        return tensor
    return tensor.float()
