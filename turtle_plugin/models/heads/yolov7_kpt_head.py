"""The YOLOv7 keypoint head for ``mmpose.BottomupPoseEstimator``: :class:`YOLOv7HeadCore` read
from and written to ``PoseDataSample`` (MMPose's ``loss`` / ``predict`` signatures).

Ground truths are read from ``gt_instance_labels`` exactly as MMPose's ``YOLOXPoseHead`` reads
them (they come from ``YOLOXPoseAnnotationProcessor`` + ``PackPoseInputs``). The MMDetection
sibling is :class:`~turtle_plugin.models.heads.YOLOv7Head`.
"""
from typing import Dict, List, Optional, Sequence

from mmengine.structures import InstanceData
from mmpose.registry import MODELS as MMPOSE_MODELS
from torch import Tensor

from .yolov7_head_core import YOLOv7HeadCore

__all__ = ['YOLOv7KptHead']


@MMPOSE_MODELS.register_module()
class YOLOv7KptHead(YOLOv7HeadCore):
    """YOLOv7 head with a YOLO-Pose keypoint branch (MMPose scope).

    Takes the arguments of :class:`YOLOv7HeadCore`; ``head_module.num_keypoints`` must be > 0.
    Defaults to one prediction per box (``multi_label=False``), as a pose estimator wants one
    pose per animal.
    """

    default_test_cfg = dict(
        multi_label=False, score_thr=0.001, nms=dict(type='nms', iou_threshold=0.65),
        nms_pre=30000, max_per_img=300)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.num_keypoints == 0:
            raise ValueError('YOLOv7KptHead needs head_module.num_keypoints > 0; use '
                             'YOLOv7Head with an MMDetection detector for boxes only')

    def loss(self, feats: Sequence[Tensor], batch_data_samples: list,
             train_cfg: Optional[dict] = None) -> Dict[str, Tensor]:
        """MMPose: losses from neck features and ``PoseDataSample`` ground truths.

        Args:
            feats (Sequence[Tensor]): neck features, one per level.
            batch_data_samples (list[PoseDataSample]): with ``gt_instance_labels.bboxes``
                (xyxy input pixels), ``labels`` (0-based), ``keypoints`` ``(n, K, 2)`` and
                ``keypoints_visible`` ``(n, K)``.
            train_cfg (dict, optional): the estimator's ``train_cfg``; unused (the assigner
                and losses are head arguments).

        Returns:
            dict[str, Tensor]: see :meth:`YOLOv7HeadCore.loss_by_feat`.
        """
        det_maps, kpt_maps = self(feats)
        labels = [sample.gt_instance_labels for sample in batch_data_samples]
        gts = self.pack_gts([gt.bboxes for gt in labels], [gt.labels for gt in labels],
                            [gt.keypoints for gt in labels],
                            [gt.keypoints_visible for gt in labels])
        return self.loss_by_feat(det_maps, kpt_maps, gts)

    def predict(self, feats: Sequence[Tensor], batch_data_samples: list,
                test_cfg: Optional[dict] = None) -> List[InstanceData]:
        """MMPose: predictions per image in network-input pixels.

        ``BottomupPoseEstimator`` maps them to the original image with the samples'
        ``input_size``, ``input_center`` and ``input_scale``.

        Args:
            feats (Sequence[Tensor]): neck features, one per level.
            batch_data_samples (list[PoseDataSample]): metainfo with ``input_size`` ``(w, h)``.
            test_cfg (dict, optional): post-processing overrides; ``flip_test`` and
                ``multiscale_test`` are not supported.

        Returns:
            list[InstanceData]: numpy fields ``bboxes`` ``(n, 4)`` (clipped to the input),
            ``bbox_scores``, ``scores``, ``labels``, ``keypoints`` ``(n, K, 2)``,
            ``keypoint_scores`` ``(n, K)`` and ``keypoints_visible`` ``(n, K)``.
        """
        cfg = self._test_cfg(test_cfg)
        for unsupported in ('flip_test', 'multiscale_test'):
            if cfg.get(unsupported, False):
                raise NotImplementedError(f'YOLOv7KptHead does not support test_cfg.'
                                          f'{unsupported}')
        det_maps, kpt_maps = self(feats)
        results = []
        for res, sample in zip(self.predict_by_feat(det_maps, kpt_maps, cfg),
                               batch_data_samples):
            width, height = sample.metainfo['input_size']
            bboxes = res.bboxes.clone()
            bboxes[:, 0::2] = bboxes[:, 0::2].clamp(0, width)
            bboxes[:, 1::2] = bboxes[:, 1::2].clamp(0, height)
            results.append(InstanceData(
                bboxes=bboxes, bbox_scores=res.scores, scores=res.scores, labels=res.labels,
                keypoints=res.keypoints, keypoint_scores=res.keypoint_scores,
                keypoints_visible=res.keypoint_scores).numpy())
        return results
