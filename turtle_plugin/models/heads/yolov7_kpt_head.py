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

    default_test_cfg = dict(YOLOv7HeadCore.default_test_cfg, multi_label=False)

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
            test_cfg (dict, optional): post-processing overrides (the estimator passes its
                ``test_cfg``). ``flip_test=True``: ``feats`` is ``[features, features of the
                mirrored images]`` (``BottomupPoseEstimator`` with ``test_cfg.flip_test``), the
                two predictions averaged anchor by anchor
                (:meth:`~YOLOv7HeadCore.predict_flip_by_feat`), keypoints paired by the samples'
                ``flip_indices`` metainfo. ``multiscale_test`` is not supported.

        Returns:
            list[InstanceData]: numpy fields ``bboxes`` ``(n, 4)`` (clipped to the input),
            ``bbox_scores``, ``scores``, ``labels``, ``keypoints`` ``(n, K, 2)``,
            ``keypoint_scores`` ``(n, K)`` and ``keypoints_visible`` ``(n, K)``.
        """
        cfg = self._test_cfg(test_cfg)
        if cfg.get('multiscale_test', False):
            raise NotImplementedError('YOLOv7KptHead does not support test_cfg.multiscale_test')
        if cfg.get('flip_test', False):
            if not (isinstance(feats, (list, tuple)) and len(feats) == 2
                    and all(isinstance(f, (list, tuple)) for f in feats)):
                raise ValueError('flip_test needs [features, features of the mirrored images], '
                                 "as BottomupPoseEstimator passes them when the model's "
                                 'test_cfg has flip_test=True; set it there (model.test_cfg), '
                                 "not in the head's test_cfg")
            instances = self.predict_flip_by_feat(
                *self(feats[0]), *self(feats[1]), self._flip_indices(batch_data_samples), cfg)
        else:
            instances = self.predict_by_feat(*self(feats), cfg)
        results = []
        for res, sample in zip(instances, batch_data_samples):
            width, height = sample.metainfo['input_size']
            bboxes = res.bboxes.clone()
            bboxes[:, 0::2] = bboxes[:, 0::2].clamp(0, width)
            bboxes[:, 1::2] = bboxes[:, 1::2].clamp(0, height)
            results.append(InstanceData(
                bboxes=bboxes, bbox_scores=res.scores, scores=res.scores, labels=res.labels,
                keypoints=res.keypoints, keypoint_scores=res.keypoint_scores,
                keypoints_visible=res.keypoint_scores).numpy())
        return results

    def _flip_indices(self, batch_data_samples: list) -> List[int]:
        """The samples' ``flip_indices`` metainfo (MMPose's datasets add it; the pipeline's
        ``PackPoseInputs`` must keep it in ``meta_keys``), the same for the whole batch
        (:meth:`predict_flip_by_feat` checks it is a permutation of the keypoints)."""
        found = [sample.metainfo.get('flip_indices') for sample in batch_data_samples]
        if any(indices is None for indices in found):
            raise ValueError("flip_test needs the samples' flip_indices (the mirror partner of "
                             "each keypoint, from the dataset's metainfo): keep 'flip_indices' "
                             "in the test pipeline's PackPoseInputs meta_keys")
        indices = [int(i) for i in found[0]]
        if any([int(i) for i in other] != indices for other in found[1:]):
            raise ValueError(f'flip_test: the samples of one batch have different flip_indices '
                             f'({indices} and others)')
        return indices
