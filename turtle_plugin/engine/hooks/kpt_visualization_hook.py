"""Draw confident keypoint predictions during validation and testing.

MMPose's ``PoseVisualizationHook`` hands every predicted instance to the visualizer, which draws
every box and every keypoint whose score passes ``kpt_thr``. That suits top-down models, whose
instances are the given person boxes, but a YOLO head evaluated for mAP keeps up to 300
low-score boxes per image (``score_thr=0.001``) and, with ``kpt_dim=2``, scores every keypoint 1,
so the drawing would be buried under hundreds of boxes and skeletons. This hook draws only the
instances whose box score reaches ``score_thr``, as MMDetection's ``DetVisualizationHook`` does.
"""
from typing import Optional, Sequence

from mmpose.engine.hooks import PoseVisualizationHook
from mmpose.registry import HOOKS
from mmpose.structures import PoseDataSample

__all__ = ['KptVisualizationHook']


@HOOKS.register_module()
class KptVisualizationHook(PoseVisualizationHook):
    """MMPose's visualization hook, drawing only instances with a box score >= ``score_thr``.

    Validation draws the first image of every ``interval``-th batch to the visualizer's
    backends (``vis_data/vis_image/val_img_<step>.png`` with ``LocalVisBackend``); testing draws
    every image, to ``out_dir`` if given (relative to ``work_dir/<timestamp>``).

    Args:
        enable (bool): draw at all. Defaults to False.
        interval (int): during validation, draw every ``interval``-th iteration.
            Defaults to 50.
        score_thr (float): draw instances whose ``bbox_scores`` (else ``scores``) is at least
            this. Defaults to 0.3.
        kpt_thr (float): draw keypoints whose ``keypoints_visible`` is at least this.
            Defaults to 0.3.
        show (bool): show the drawings in a window instead of storing them. Defaults to False.
        wait_time (float): seconds to show each drawing with ``show``. Defaults to 0.
        out_dir (str, optional): where testing writes the drawings. Defaults to None.
        backend_args (dict, optional): file backend arguments for reading the images.
            Defaults to None.
    """

    def __init__(self,
                 enable: bool = False,
                 interval: int = 50,
                 score_thr: float = 0.3,
                 kpt_thr: float = 0.3,
                 show: bool = False,
                 wait_time: float = 0.,
                 out_dir: Optional[str] = None,
                 backend_args: Optional[dict] = None):
        super().__init__(enable=enable, interval=interval, kpt_thr=kpt_thr, show=show,
                         wait_time=wait_time, out_dir=out_dir, backend_args=backend_args)
        self.score_thr = score_thr

    def after_val_iter(self, runner, batch_idx: int, data_batch: dict,
                       outputs: Sequence[PoseDataSample]) -> None:
        """Draw the first confident predictions of every ``interval``-th batch."""
        if self.enable:
            super().after_val_iter(runner, batch_idx, data_batch, self._confident(outputs))

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict,
                        outputs: Sequence[PoseDataSample]) -> None:
        """Draw the confident predictions of every image of the batch."""
        if self.enable:
            super().after_test_iter(runner, batch_idx, data_batch, self._confident(outputs))

    def _confident(self, outputs: Sequence[PoseDataSample]) -> list:
        """Copies of the samples keeping the instances that reach ``score_thr`` (the
        evaluator has already read the originals; they are not changed)."""
        kept = []
        for sample in outputs:
            preds = sample.get('pred_instances')
            scores = None if preds is None else preds.get('bbox_scores', preds.get('scores'))
            sample = sample.clone()
            if scores is not None:
                sample.pred_instances = preds[scores >= self.score_thr]
            kept.append(sample)
        return kept
