"""Keypoint logic of the YOLOv7 head: YOLO-Pose's keypoint decoding, targets and losses.

Maji et al., "YOLO-Pose", CVPR-W 2022 (``IKeypoint``, ``ComputeLoss(kpt_label)``). The head
(:class:`~turtle_plugin.models.heads.YOLOv7HeadCore`) holds one :class:`KptBranch` when its
layers predict keypoints and none otherwise; the keypoint convolutions themselves are the
layers module's ``kpt_convs``. Decoding, per anchor at cell ``(i, j)`` of a level with stride
``s``::

    kpt_x, kpt_y = (2 * t_kpt - 0.5 + (i, j)) * s  (raw, no sigmoid)     kpt_vis = sigmoid(t_vis)

Losses (``hyp.pose``), per level, on the positives the box assignment chose::

    loss_kpt = 0.10                    * sum_l mean_visible (1 - OKS)
    loss_kpt_vis = 0.3 * C/80 * 3/nl   * sum_l mean_pos,kpt BCE(vis, visible)   (kpt_dim == 3)
    loss_kpt_aux = w_aux               * sum_l mean_visible (|dx| + |dy|) / sqrt(area)  (optional)
"""
import warnings
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from turtle_plugin.datasets.metainfo import default_pose_metainfo, load_pose_metainfo
from turtle_plugin.registry import MODELS
from .utils import floating, gather_candidates, grid_cells

__all__ = ['KptBranch']


class KptBranch(nn.Module):
    """Decoding, ground-truth packing and losses of ``K`` keypoints per anchor.

    Args:
        num_keypoints (int): keypoints per instance ``K`` (> 0).
        kpt_dim (int): values predicted per keypoint: 2 (x, y) or 3 (x, y, visibility logit).
        num_anchors (int): anchors per level ``A``.
        loss_kpt (dict): keypoint loss (``YOLOPoseOKSLoss``) taking
            ``(pred, target, visible, areas, sigmas, weight=)``; ``loss_weight`` is
            ``hyp['kpt']``.
        loss_kpt_vis (dict): keypoint visibility loss on logits, used when ``kpt_dim == 3``;
            YOLO-Pose reuses ``hyp['cls']`` for it.
        loss_kpt_aux (dict, optional): an auxiliary keypoint loss beside ``loss_kpt`` taking
            ``(pred, target, visible, areas, weight=)``, e.g. ``KptScaledL1Loss``, whose
            gradient does not vanish far from the target as ``1 - OKS``'s does. ``None`` (the
            original YOLO-Pose): no such term.
        kpt_sigmas (Sequence[float] | dict | str, optional): per-keypoint sigmas of the OKS
            loss: a list, or the dataset's metainfo
            (``dict(from_file='configs/_base_/datasets/turtle.py')``, or
            ``dict(from_file=<data yaml>)`` for a dataset without a metainfo file) to take its
            ``sigmas`` from, as the datasets read it
            (:func:`~turtle_plugin.datasets.load_pose_metainfo`), or ``'uniform'``: ``1 / K``
            for every keypoint (the width Ultralytics' pose loss uses for any skeleton), which
            keeps the loss's gradient where small evaluation sigmas would flatten it; the
            metric keeps the metainfo's sigmas either way. ``None`` uses ``1 / K`` and warns.
    """

    def __init__(self,
                 num_keypoints: int,
                 kpt_dim: int,
                 num_anchors: int,
                 loss_kpt: dict,
                 loss_kpt_vis: dict,
                 loss_kpt_aux: Optional[dict] = None,
                 kpt_sigmas: Optional[Union[Sequence[float], dict, str]] = None):
        super().__init__()
        if num_keypoints < 1:
            raise ValueError(f'KptBranch needs num_keypoints >= 1, got {num_keypoints}')
        self.num_keypoints = num_keypoints
        self.kpt_dim = kpt_dim
        self.num_anchors = num_anchors
        self.loss_kpt = MODELS.build(loss_kpt)
        self.loss_kpt_vis = MODELS.build(loss_kpt_vis) if kpt_dim == 3 else None
        self.loss_kpt_aux = MODELS.build(loss_kpt_aux) if loss_kpt_aux else None
        # config is the source of truth: sigmas are not saved in checkpoints
        self.register_buffer('kpt_sigmas', self._check_sigmas(kpt_sigmas), persistent=False)

    def _check_sigmas(self, kpt_sigmas: Optional[Union[Sequence[float], dict, str]]) -> Tensor:
        num_keypoints = self.num_keypoints
        if isinstance(kpt_sigmas, str):
            if kpt_sigmas != 'uniform':
                raise ValueError(f"kpt_sigmas must be a list, a metainfo dict or 'uniform', "
                                 f'got {kpt_sigmas!r}')
            kpt_sigmas = default_pose_metainfo(num_keypoints)['sigmas']
        if isinstance(kpt_sigmas, dict):
            # a dataset metainfo (``dict(from_file=...)`` or a full dataset_info): its sigmas
            source = kpt_sigmas.get('from_file', 'the metainfo dict')
            kpt_sigmas = load_pose_metainfo(kpt_sigmas)['sigmas']
            if len(kpt_sigmas) != num_keypoints:
                raise ValueError(f'the metainfo {source} has {len(kpt_sigmas)} keypoints but the '
                                 f'head predicts {num_keypoints}')
        if kpt_sigmas is None:
            warnings.warn(
                f'no kpt_sigmas given, the OKS loss uses 1/K = {1 / num_keypoints:.3f} for all '
                f"{num_keypoints} keypoints. Pass the dataset metainfo's `sigmas` as "
                f'`kpt_sigmas`.', UserWarning)
            kpt_sigmas = default_pose_metainfo(num_keypoints)['sigmas']
        sigmas = torch.as_tensor(kpt_sigmas, dtype=torch.float32).flatten()
        if sigmas.numel() != num_keypoints:
            raise ValueError(f'kpt_sigmas has {sigmas.numel()} entries but the head predicts '
                             f'{num_keypoints} keypoints')
        if (sigmas <= 0).any():
            raise ValueError(f'kpt_sigmas must be positive, got {sigmas.tolist()}')
        return sigmas

    def loss_scales(self, cls_scale: float) -> Dict[str, float]:
        """Scale of each keypoint loss the branch reports, in report order: the OKS and the
        auxiliary terms unscaled, the visibility term scaled like the class gain
        (``cls_scale``, YOLO-Pose's reuse of ``hyp['cls']``)."""
        scales = dict(kpt=1.0)
        if self.loss_kpt_vis is not None:
            scales['kpt_vis'] = cls_scale
        if self.loss_kpt_aux is not None:
            scales['kpt_aux'] = 1.0
        return scales

    def split_level(self, kpt_map: Tensor) -> Tensor:
        """``(B, A*K*D, H, W)`` -> ``(B, A, H, W, K, D)``."""
        batch_size, _, height, width = kpt_map.shape
        kpt = kpt_map.view(batch_size, self.num_anchors, self.num_keypoints, self.kpt_dim,
                           height, width)
        return kpt.permute(0, 1, 4, 5, 2, 3)

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

    def level_losses(self, kpt: Tensor, target: dict, gts: Dict[str, Tensor],
                     stride: float) -> Dict[str, Tensor]:
        """Unscaled keypoint losses of one level.

        Args:
            kpt (Tensor): ``(B, A, H, W, K, D)`` raw predictions of the level.
            target (dict): the level's assignment (``cells``, ``pos``, ``gt_inds``) from
                :meth:`YOLOv7HeadCore.get_targets`.
            gts (dict[str, Tensor]): padded ground truths with this branch's keypoints.
            stride (float): the level's stride.

        Returns:
            dict[str, Tensor]: ``kpt`` and, when the branch has them, ``kpt_aux`` and
            ``kpt_vis``.
        """
        cells, pos, gt_inds = target['cells'], target['pos'], target['gt_inds']
        batch_inds = torch.arange(kpt.shape[0], device=kpt.device).view(-1, 1, 1, 1)
        cand = gather_candidates(kpt, cells)  # (B, G, A, 5, K, D)
        pred_kpts = self.decode_keypoints(cand, cells.to(cand.dtype), stride)
        gt_kpts = gts['keypoints'][batch_inds, gt_inds].to(cand.dtype)  # (B, G, A, 5, K, 2)
        visible = gts['keypoints_visible'][batch_inds, gt_inds] > 0  # (B, G, A, 5, K)
        boxes = gts['bboxes'][batch_inds, gt_inds].to(cand.dtype)
        areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        losses = dict(kpt=self.loss_kpt(pred_kpts, gt_kpts, visible, areas,
                                        self.kpt_sigmas.to(cand.dtype), weight=pos))
        if self.loss_kpt_aux is not None:
            losses['kpt_aux'] = self.loss_kpt_aux(pred_kpts, gt_kpts, visible, areas, weight=pos)
        if self.loss_kpt_vis is not None:
            losses['kpt_vis'] = self.loss_kpt_vis(
                cand[..., 2], visible.to(cand.dtype), weight=pos[..., None],
                avg_factor=pos.sum() * self.num_keypoints)
        return losses

    def pack_gts(self, keypoints: Optional[Sequence[Tensor]],
                 keypoints_visible: Optional[Sequence[Tensor]],
                 counts: Sequence[int]) -> Dict[str, Tensor]:
        """Pad per-image keypoints to ``(B, G, K, 2)`` and visibilities to ``(B, G, K)``.

        Args:
            keypoints (Sequence[Tensor], optional): per image ``(n_i, K, 2)``; required.
            keypoints_visible (Sequence[Tensor], optional): per image ``(n_i, K)``, > 0 where
                a keypoint is labelled; all visible when omitted.
            counts (Sequence[int]): ``n_i``, the boxes of each image.

        Returns:
            dict[str, Tensor]: ``keypoints`` and ``keypoints_visible``.
        """
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
        return dict(
            keypoints=pad_sequence([floating(k) for k in keypoints], batch_first=True),
            keypoints_visible=pad_sequence(
                [v.reshape(len(v), self.num_keypoints).float() for v in keypoints_visible],
                batch_first=True))

    @torch.no_grad()
    def decode_dense(self, kpt_maps: Sequence[Tensor],
                     strides: Sequence[float]) -> Dict[str, Tensor]:
        """Every anchor's keypoints of every level: ``keypoints`` ``(B, N, K, 2)`` and
        ``keypoint_scores`` ``(B, N, K)`` (the visibility probability when ``kpt_dim == 3``,
        else 1), ``N`` in the order of the head's box decoding."""
        keypoints, scores = [], []
        for kpt_map, stride in zip(kpt_maps, strides):
            kpt = self.split_level(kpt_map)
            batch_size, _, height, width = kpt.shape[:4]
            cells = grid_cells(height, width, kpt)  # (H, W, 2)
            keypoints.append(self.decode_keypoints(kpt, cells, stride)
                             .reshape(batch_size, -1, self.num_keypoints, 2))
            vis = kpt[..., 2].sigmoid() if self.kpt_dim == 3 else torch.ones_like(kpt[..., 0])
            scores.append(vis.reshape(batch_size, -1, self.num_keypoints))
        return dict(keypoints=torch.cat(keypoints, 1), keypoint_scores=torch.cat(scores, 1))
