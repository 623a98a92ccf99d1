"""Precision / recall / F1 at the best-F1 confidence for detection models (MMDetection scope).

A companion of ``mmdet.CocoMetric`` in an evaluator list: it reads the same predictions and the
same ground truth (MMDetection's own loading and conversion, inherited), matches boxes with
pycocotools ``COCOeval`` at one IoU, and reports the exact P/R/F1 curve over the confidence
threshold (:func:`~turtle_plugin.evaluation.functional.pr_f1_curve`).
"""
import os.path as osp
import tempfile
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np
from mmdet.datasets.api_wrappers import COCO
from mmdet.evaluation import CocoMetric
from mmengine.fileio import load
from mmengine.logging import MMLogger
from pycocotools.cocoeval import COCOeval

from mmdet.registry import METRICS
from ..functional import detection_matches, pr_f1_curve, save_pr_curve

__all__ = ['BoxPRMetric']


@METRICS.register_module()
class BoxPRMetric(CocoMetric):
    """Box P/R/F1 at the best-F1 confidence threshold, and the curve as PNG + JSON.

    Detections are matched as COCO matches them (greedy by score, the unmatched ground truth of
    highest IoU >= ``iou_thr``, crowd ground truths ignored), over the ``max_dets`` best boxes
    per image and category -- 100, the ``maxDets`` of MMDetection's ``bbox_mAP``. Categories
    are pooled. Inputs are those of ``mmdet.CocoMetric``: ``pred_instances.bboxes`` (xyxy,
    original image), ``scores``, ``labels``, and ``ann_file`` or the samples' ``instances``.

    Returns ``box_precision``, ``box_recall``, ``box_f1`` and ``box_best_thr`` under the prefix
    ``pr/`` and writes ``<outfile_prefix>.box_pr.{png,json}`` (and MMDetection's
    ``.bbox.json``) when ``outfile_prefix`` is given, else ``results.box_pr.*`` in the folder
    of the current run's log file when there is one.

    Args:
        ann_file (str, optional): COCO annotation file; without it the samples' ``instances``
            are converted as ``mmdet.CocoMetric`` converts them.
        iou_thr (float): IoU a detection needs to match a ground truth.
        max_dets (int): detections per image and category considered, best first.
        outfile_prefix (str, optional): path prefix of the written files.
        backend_args (dict, optional): file backend arguments for ``ann_file``.
        collect_device (str): ``'cpu'`` or ``'gpu'``, for collecting results across ranks.
        prefix (str, optional): metric-name prefix; ``'pr'`` when None.
    """
    default_prefix: Optional[str] = 'pr'

    def __init__(self,
                 ann_file: Optional[str] = None,
                 iou_thr: float = 0.5,
                 max_dets: int = 100,
                 outfile_prefix: Optional[str] = None,
                 backend_args: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(
            ann_file=ann_file,
            metric='bbox',
            proposal_nums=(max_dets, ),
            iou_thrs=[iou_thr],
            outfile_prefix=outfile_prefix,
            backend_args=backend_args,
            collect_device=collect_device,
            prefix=prefix)
        self.iou_thr = iou_thr
        self.max_dets = max_dets

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Match the boxes, write the curve, return the best-F1 point.

        Args:
            results (list): the ``(gt, pred)`` records of ``mmdet.CocoMetric.process``.

        Returns:
            dict[str, float]: ``box_precision``, ``box_recall``, ``box_f1``, ``box_best_thr``.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        tmp_dir = tempfile.TemporaryDirectory() if self.outfile_prefix is None else None
        work_prefix = self.outfile_prefix or osp.join(tmp_dir.name, 'results')
        try:
            if self._coco_api is None:
                logger.info('Converting ground truth to coco format...')
                self._coco_api = COCO(self.gt_to_coco_json(gts, work_prefix))
            if self.cat_ids is None:
                self.cat_ids = self._coco_api.get_cat_ids(cat_names=self.dataset_meta['classes'])
            if self.img_ids is None:
                self.img_ids = self._coco_api.get_img_ids()
            detections = load(self.results2json(preds, work_prefix)['bbox'])
            if detections:
                coco_eval = COCOeval(self._coco_api, self._coco_api.loadRes(detections), 'bbox')
                coco_eval.params.catIds = self.cat_ids
                coco_eval.params.imgIds = self.img_ids
                coco_eval.params.maxDets = [self.max_dets]
                coco_eval.params.iouThrs = np.array([self.iou_thr], dtype=np.float64)
                coco_eval.evaluate()
                m = detection_matches(coco_eval, self.iou_thr, self.max_dets)
                curve = pr_f1_curve(m.scores, m.is_tp, m.num_gt)
            else:
                anns = self._coco_api.load_anns(
                    self._coco_api.get_ann_ids(img_ids=self.img_ids, cat_ids=self.cat_ids))
                num_gt = sum(1 for a in anns if not a.get('iscrowd', 0))
                curve = pr_f1_curve(np.zeros(0), np.zeros(0, bool), num_gt)
        finally:
            if tmp_dir is not None:
                tmp_dir.cleanup()

        best = curve['best']
        title = f'boxes, IoU >= {self.iou_thr}'
        logger.info(f'{title}: best F1 {best["f1"]:.4f} at confidence {best["threshold"]:.4f} '
                    f'(P {best["precision"]:.4f}, R {best["recall"]:.4f})')
        extras_prefix = self.outfile_prefix
        if extras_prefix is None and getattr(logger, 'log_file', None):
            extras_prefix = osp.join(osp.dirname(logger.log_file), 'results')
        if extras_prefix is not None:
            save_pr_curve(curve, f'{extras_prefix}.box_pr', title)
        return OrderedDict(box_precision=best['precision'], box_recall=best['recall'],
                           box_f1=best['f1'], box_best_thr=best['threshold'])
