"""The YOLOv7 head for MMDetection detectors: :class:`YOLOv7HeadCore` read from and written
to ``DetDataSample`` (MMDetection's ``loss`` / ``predict`` signatures).

A YOLOv7Head predicts boxes; with ``head_module.num_keypoints > 0`` it also carries the
keypoint branch and reads ``gt_instances.keypoints`` -- how an original YOLO-Pose checkpoint
converted with ``--scope mmdet`` (``tools/model_converters/yolov7_to_turtle.py``) runs in an
MMDetection detector. Keypoint models trained by the plugin's configs use the MMPose sibling,
:class:`~turtle_plugin.models.heads.YOLOv7KptHead`.
"""
from typing import Dict, List, Sequence

import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.structures import InstanceData
from torch import Tensor

from .yolov7_head_core import YOLOV7_P5_ANCHORS, YOLOv7HeadCore

__all__ = ['YOLOv7Head', 'YOLOV7_P5_ANCHORS']


@MMDET_MODELS.register_module()
class YOLOv7Head(YOLOv7HeadCore):
    """YOLOv7 detection head (MMDetection scope).

    Takes the arguments of :class:`YOLOv7HeadCore`. Keeps every class of a box above the
    score threshold (``multi_label=True``), as YOLOv7's ``test.py`` does for mAP.
    """

    def loss(self, x: Sequence[Tensor], batch_data_samples: list) -> Dict[str, Tensor]:
        """MMDetection: losses from neck features and ``DetDataSample`` ground truths.

        Args:
            x (Sequence[Tensor]): neck features, one per level.
            batch_data_samples (list[DetDataSample]): with ``gt_instances.bboxes`` (xyxy,
                ``HorizontalBoxes`` or Tensor, input pixels) and ``gt_instances.labels``; and
                ``gt_instances.keypoints`` (+ ``keypoints_visible``) when the head predicts
                keypoints.

        Returns:
            dict[str, Tensor]: see :meth:`YOLOv7HeadCore.loss_by_feat`.
        """
        det_maps, kpt_maps = self(x)
        instances = [sample.gt_instances for sample in batch_data_samples]
        bboxes = [getattr(inst.bboxes, 'tensor', inst.bboxes) for inst in instances]
        keypoints = visible = None
        if self.kpt_branch is not None:
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
