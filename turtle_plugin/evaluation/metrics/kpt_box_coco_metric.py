"""COCO keypoint AP (MMPose) and box AP (MMDetection-style) of the same keypoint predictions.

One test run of a bottom-up keypoint model that also predicts boxes (YOLO-Pose, YOLOX-Pose, the
plugin's YOLOv7 keypoint head) gives the numbers both ecosystems publish:

* OKS AP/AR: MMPose's own :class:`mmpose.evaluation.CocoMetric` (xtcocotools, the dataset's
  sigmas), inherited unchanged -- keys ``coco/AP``, ``coco/AP .5``, ... as MMPose names them;
* box AP of the same predictions: pycocotools ``COCOeval(iouType='bbox')`` against the same
  ground truth, set up as MMDetection's ``CocoMetric`` -- keys ``coco/bbox_mAP``,
  ``coco/bbox_mAP_50``, ... (see :func:`~turtle_plugin.evaluation.functional.coco_box_eval`);
* precision / recall / F1 at the best-F1 confidence (boxes at IoU 0.5, poses at OKS 0.5) --
  keys ``pr/...``, curves written as PNG and JSON;
* a per-keypoint table of pixel error and PCK -- keys ``kpt/...``.
"""
import copy
import os.path as osp
import tempfile
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.fileio import dump
from mmengine.logging import MMLogger
from mmpose.evaluation import CocoMetric
from mmpose.registry import METRICS
from pycocotools.coco import COCO
from terminaltables import AsciiTable
from xtcocotools.coco import COCO as XtCOCO
from xtcocotools.cocoeval import COCOeval as XtCOCOeval

from ..functional import (DetectionMatches, coco_box_eval, detection_matches, keypoint_errors,
                          pr_f1_curve, save_pr_curve)

__all__ = ['KptBoxCocoMetric']

# Not a metric: the name under which _do_python_keypoint_eval hands its COCOeval (the pose
# matches) back through MMPose's compute_metrics, whose stats it joins; compute_metrics pops it.
POSE_EVAL_KEY = '_pose_eval'

def _to_numpy(value) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


@METRICS.register_module()
class KptBoxCocoMetric(CocoMetric):
    """MMPose's ``CocoMetric`` plus box AP, P/R/F1 curves and per-keypoint errors.

    Reads what ``BottomupPoseEstimator`` puts into each ``PoseDataSample``: ``pred_instances``
    with ``keypoints`` (N, K, 2), ``keypoint_scores`` (N, K), ``bboxes`` (N, 4, xyxy), box
    scores ``bbox_scores`` (or ``scores``) and optionally ``labels`` (N,) 0-based, all in
    original-image pixels; and the sample's ``id``, ``img_id``, ``ori_shape``,
    ``raw_ann_info`` (without ``ann_file``) and ``category_id``. A non-scalar ``category_id``
    (bottom-up samples packed with MMPose's default ``meta_keys`` carry the image's ground-truth
    ids, which MMPose's metric cannot write) is replaced by the ground truth's category when it
    has exactly one.

    What is computed, all against the same ground truth (``ann_file``, or the dataset's
    ``raw_ann_info`` converted as MMPose does):

    * OKS AP/AR: the parent class, untouched (``score_mode``, ``nms_mode`` apply to it only).
    * Box AP: every predicted box with its own box score (no keypoint rescoring, no OKS NMS), its
      category from ``labels`` through ``dataset_meta['classes']`` (or ``CLASSES``), else the
      keypoint category; evaluated by :func:`coco_box_eval` like MMDetection (unrounded).
    * P/R/F1: exact curves over the confidence threshold (:func:`pr_f1_curve`) from the
      matches of the same ``COCOeval`` runs -- box matches at IoU ``pr_iou_thr`` over the 100
      best boxes per image, pose matches at OKS ``pr_oks_thr`` over the 20 best poses per image
      scored as MMPose scores them. Crowd / unlabelled ground truths are ignored as COCO
      ignores them. To read the pose matches a second xtcocotools ``COCOeval.evaluate()`` runs
      on MMPose's result file (OKS is computed twice; MMPose's own evaluation is left as is).
    * Per keypoint: ground truths matched to a box (the box matches at IoU ``match_iou_thr``,
      greedy by box score as COCO matches) give the mean pixel error and PCK@``pck_thr`` of each
      labelled keypoint, PCK normalised by ``max(w, h)`` of the ground-truth box (MMPose's
      ``PCKAccuracy(norm_item='bbox')``). Keypoints are named by ``keypoint_id2name``.

    Returned keys: MMPose's stats and ``bbox_mAP``, ``bbox_mAP_50``, ``bbox_mAP_75``,
    ``bbox_mAP_s``, ``bbox_mAP_m``, ``bbox_mAP_l`` under the metric prefix (``coco/``); and,
    without it, ``pr/{box,kpt}_{precision,recall,f1,best_thr}``, ``kpt/{name}_err_px``,
    ``kpt/{name}_pck``, ``kpt/mean_err_px``, ``kpt/pck`` (pooled over all labelled keypoints) and
    ``kpt/num_matched``. A keypoint never labelled in a matched ground truth reads NaN.

    Files, next to ``outfile_prefix`` (or, without it, ``results.*`` in the folder of the current
    run's log file, if there is one): ``.keypoints.json`` (MMPose), ``.bbox.json``,
    ``.box_pr.{png,json}``, ``.kpt_pr.{png,json}``, ``.per_keypoint.json``.

    Args:
        ann_file (str, optional): COCO keypoint annotation file; without it the ground truth is
            converted from the samples' ``raw_ann_info`` (needs ``dataset_meta['CLASSES']``).
        use_area (bool): use the annotations' ``area`` in OKS (MMPose).
        iou_type (str): ``'keypoints'`` or ``'keypoints_crowd'`` (MMPose).
        score_mode (str): pose score, ``'bbox'``, ``'bbox_keypoint'``, ``'bbox_rle'`` or
            ``'keypoint'`` (MMPose); bottom-up models usually want ``'bbox'``.
        keypoint_score_thr (float): keypoint score threshold of ``'bbox_keypoint'`` (MMPose).
        nms_mode (str): ``'oks_nms'``, ``'soft_oks_nms'`` or ``'none'`` (MMPose); models that
            already ran NMS want ``'none'``.
        nms_thr (float): OKS NMS threshold (MMPose).
        format_only (bool): only write the result files (MMPose); needs ``outfile_prefix``.
        bbox_max_dets (Sequence[int]): box ``COCOeval`` ``maxDets``, MMDetection's
            ``proposal_nums``; must include 100.
        pr_iou_thr (float): box IoU of the P/R/F1 curve; one of 0.50, 0.55, ..., 0.95.
        pr_oks_thr (float): OKS of the pose P/R/F1 curve; one of 0.50, 0.55, ..., 0.95.
        match_iou_thr (float): box IoU that pairs predictions with ground truths for the
            per-keypoint table; one of 0.50, 0.55, ..., 0.95.
        pck_thr (float): PCK threshold, a fraction of the ground-truth box's longer side.
        outfile_prefix (str, optional): path prefix of the written files, e.g.
            ``'work_dirs/turtle/results'``.
        collect_device (str): ``'cpu'`` or ``'gpu'``, for collecting results across ranks.
        prefix (str, optional): metric-name prefix of the MMPose and box AP keys; ``'coco'``
            when None.
    """

    def __init__(self,
                 ann_file: Optional[str] = None,
                 use_area: bool = True,
                 iou_type: str = 'keypoints',
                 score_mode: str = 'bbox_keypoint',
                 keypoint_score_thr: float = 0.2,
                 nms_mode: str = 'oks_nms',
                 nms_thr: float = 0.9,
                 format_only: bool = False,
                 bbox_max_dets: Sequence[int] = (100, 300, 1000),
                 pr_iou_thr: float = 0.5,
                 pr_oks_thr: float = 0.5,
                 match_iou_thr: float = 0.5,
                 pck_thr: float = 0.05,
                 outfile_prefix: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(
            ann_file=ann_file,
            use_area=use_area,
            iou_type=iou_type,
            score_mode=score_mode,
            keypoint_score_thr=keypoint_score_thr,
            nms_mode=nms_mode,
            nms_thr=nms_thr,
            format_only=format_only,
            outfile_prefix=outfile_prefix,
            collect_device=collect_device,
            prefix=prefix)
        if len(bbox_max_dets) < 3 or 100 not in bbox_max_dets:
            raise ValueError(f'bbox_max_dets must hold at least three numbers including 100 '
                             f'(COCOeval.summarize reads those), got {list(bbox_max_dets)}')
        self.bbox_max_dets = list(bbox_max_dets)
        self.pr_iou_thr = pr_iou_thr
        self.pr_oks_thr = pr_oks_thr
        self.match_iou_thr = match_iou_thr
        self.pck_thr = pck_thr

    def process(self, data_batch: Sequence[dict], data_samples: Sequence[dict]) -> None:
        """Store MMPose's per-sample record plus the boxes, box scores and labels.

        Args:
            data_batch (Sequence[dict]): a batch from the dataloader (unused).
            data_samples (Sequence[dict]): model outputs, see the class docstring.
        """
        start = len(self.results)
        super().process(data_batch, data_samples)
        for (pred, _), sample in zip(self.results[start:], data_samples):
            inst = sample['pred_instances']
            if 'bboxes' not in inst:
                raise ValueError(f'{type(self).__name__} needs pred_instances.bboxes (xyxy, '
                                 f'original image pixels); use mmpose.CocoMetric for models '
                                 f'that predict keypoints only')
            score_key = 'bbox_scores' if 'bbox_scores' in inst else 'scores'
            if score_key not in inst:
                raise ValueError(f'{type(self).__name__} needs box scores in '
                                 f'pred_instances.bbox_scores or pred_instances.scores')
            boxes = _to_numpy(inst['bboxes']).reshape(-1, 4).astype(np.float64)
            pred['box_xyxy'] = boxes
            pred['box_scores'] = _to_numpy(inst[score_key]).reshape(-1).astype(np.float64)
            pred['labels'] = _to_numpy(inst['labels']).reshape(-1).astype(np.int64) \
                if 'labels' in inst else None
            if not len(boxes) == len(pred['box_scores']) == len(pred['keypoints']):
                raise ValueError(f'image {pred["img_id"]}: {len(boxes)} boxes, '
                                 f'{len(pred["box_scores"])} box scores and '
                                 f'{len(pred["keypoints"])} poses; expected one of each per '
                                 f'instance')

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """OKS AP (MMPose), box AP, P/R/F1 and the per-keypoint table.

        Args:
            results (list): the ``(pred, gt)`` records of :meth:`process`, all ranks.

        Returns:
            dict[str, float]: see the class docstring for the keys.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        preds, gts = zip(*results)
        tmp_dir = tempfile.TemporaryDirectory() if self.outfile_prefix is None else None
        work_prefix = self.outfile_prefix or osp.join(tmp_dir.name, 'results')
        try:
            if self.coco is None:
                # the same conversion MMPose's compute_metrics would do; the parent then
                # finds self.coco set and reuses it
                logger.info('Converting ground truth to coco format...')
                self.coco = XtCOCO(self.gt_to_coco_json(gts, work_prefix))
            kpt_cat = self._fix_category_ids(preds)
            box_gt = COCO()
            box_gt.dataset = copy.deepcopy(self.coco.dataset)
            box_gt.createIndex()
            cat_ids = self._label_category_ids(box_gt)
            dets, det_kpts = self._box_results(preds, cat_ids, kpt_cat)
            if self.outfile_prefix is not None:  # MMDetection's result file, same name
                dump([{k: v for k, v in d.items() if k != 'pred_index'} for d in dets],
                     f'{self.outfile_prefix}.bbox.json')

            metrics = OrderedDict(super().compute_metrics(results))
            pose_eval = metrics.pop(POSE_EVAL_KEY, None)  # absent with format_only
            if self.format_only:
                return metrics

            box_metrics, box_eval = coco_box_eval(box_gt, [dict(d) for d in dets], cat_ids,
                                                  max_dets=self.bbox_max_dets)
            metrics.update(box_metrics)
            logger.info('bbox_mAP_copypaste: ' + ' '.join(
                f'{v:.3f}' for v in box_metrics.values()))

            extras_prefix = self._extras_prefix(logger)
            metrics.update(self._pr_metrics(box_eval, pose_eval, box_gt, cat_ids, extras_prefix,
                                            logger))
            metrics.update(self._per_keypoint(box_eval, box_gt, det_kpts, extras_prefix,
                                              logger))
            return metrics
        finally:
            if tmp_dir is not None:
                tmp_dir.cleanup()

    def evaluate(self, size: int) -> dict:
        """MMEngine's evaluate; keys that carry their own namespace (``pr/``, ``kpt/``) are not
        prefixed.

        Args:
            size (int): length of the whole evaluation dataset.

        Returns:
            dict: the metrics.
        """
        metrics = super().evaluate(size)
        if not self.prefix:
            return metrics
        head = f'{self.prefix}/'
        return {
            (k[len(head):] if k.startswith(head) and '/' in k[len(head):] else k): v
            for k, v in metrics.items()
        }

    def _do_python_keypoint_eval(self, outfile_prefix: str) -> list:
        """MMPose's keypoint evaluation, then one more ``evaluate()`` for the pose matches.

        MMPose's ``compute_metrics`` calls this on the result file it wrote (in a temporary
        folder it removes afterwards) and returns these stats as its metrics, so the matches
        ride back with them, under :data:`POSE_EVAL_KEY`; :meth:`compute_metrics` takes them
        out.

        Args:
            outfile_prefix (str): where MMPose wrote ``<prefix>.keypoints.json``.

        Returns:
            list: MMPose's ``(name, value)`` stats, then ``(POSE_EVAL_KEY, COCOeval)``.
        """
        stats = super()._do_python_keypoint_eval(outfile_prefix)
        coco_det = self.coco.loadRes(f'{outfile_prefix}.keypoints.json')
        pose_eval = XtCOCOeval(self.coco, coco_det, self.iou_type, self.dataset_meta['sigmas'],
                               self.use_area)
        pose_eval.params.useSegm = None
        pose_eval.evaluate()
        return stats + [(POSE_EVAL_KEY, pose_eval)]

    def _fix_category_ids(self, preds: Sequence[dict]) -> int:
        """Replace non-scalar ``category_id`` records by the single ground-truth category.

        Returns:
            int: that category id, the one given to boxes without ``labels`` and no scalar id.
        """
        cat_ids = self.coco.getCatIds()
        single = cat_ids[0] if len(cat_ids) == 1 else None
        for pred in preds:
            if np.ndim(pred['category_id']) == 0:
                continue
            if single is None:
                raise ValueError(
                    f'image {pred["img_id"]} carries category_id '
                    f'{np.asarray(pred["category_id"]).tolist()} (the ground-truth ids of a '
                    f'bottom-up sample) and the ground truth has {len(cat_ids)} categories: '
                    f"drop 'category_id' from PackPoseInputs meta_keys, MMPose's CocoMetric "
                    f'evaluates one keypoint category per image')
            pred['category_id'] = single
        return 1 if single is None else single

    def _label_category_ids(self, box_gt: COCO) -> List[int]:
        """Ground-truth category id of each 0-based label, in ``dataset_meta`` class order."""
        meta = self.dataset_meta or {}
        by_name = {cat['name']: cat['id'] for cat in box_gt.loadCats(box_gt.getCatIds())}
        if meta.get('classes'):
            missing = [name for name in meta['classes'] if name not in by_name]
            if missing:
                raise ValueError(f'dataset_meta classes {missing} are not categories of the '
                                 f'ground truth ({sorted(by_name)})')
            return [by_name[name] for name in meta['classes']]
        if meta.get('CLASSES'):
            return [int(cat['id']) for cat in meta['CLASSES']]
        return sorted(box_gt.getCatIds())

    @staticmethod
    def _box_results(preds: Sequence[dict], cat_ids: List[int],
                     default_cat: int) -> Tuple[List[dict], List[np.ndarray]]:
        """COCO box results of every predicted instance and, aligned, its keypoints."""
        dets, kpts = [], []
        for pred in preds:
            labels = pred['labels']
            if labels is not None and len(labels) and labels.max() >= len(cat_ids):
                raise ValueError(f'image {pred["img_id"]}: predicted label {labels.max()} but '
                                 f'the ground truth maps {len(cat_ids)} classes')
            scalar_cat = pred['category_id'] if np.ndim(pred['category_id']) == 0 \
                else default_cat
            for j, (x1, y1, x2, y2) in enumerate(pred['box_xyxy'].tolist()):
                cat = cat_ids[labels[j]] if labels is not None else scalar_cat
                dets.append(dict(image_id=int(pred['img_id']), category_id=int(cat),
                                 bbox=[x1, y1, x2 - x1, y2 - y1],
                                 score=float(pred['box_scores'][j]), pred_index=len(kpts)))
                kpts.append(np.asarray(pred['keypoints'][j], dtype=np.float64))
        return dets, kpts

    def _pr_metrics(self, box_eval, pose_eval, box_gt: COCO, cat_ids: Sequence[int],
                    extras_prefix: Optional[str], logger: MMLogger) -> Dict[str, float]:
        """Best-F1 points of the box and pose curves (from the box and the pose ``COCOeval``,
        None where nothing was predicted); the curves written next to the prefix."""
        metrics = OrderedDict()
        for kind, coco_eval, thr, max_det, gt, kind_cat_ids, title in (
                ('box', box_eval, self.pr_iou_thr, 100, box_gt, cat_ids,
                 f'boxes, IoU >= {self.pr_iou_thr}'),
                ('kpt', pose_eval, self.pr_oks_thr, None, self.coco, self.coco.getCatIds(),
                 f'keypoints, OKS >= {self.pr_oks_thr}')):
            if coco_eval is not None:
                max_det = max(coco_eval.params.maxDets) if max_det is None else max_det
                m = detection_matches(coco_eval, thr, max_det)
                curve = pr_f1_curve(m.scores, m.is_tp, m.num_gt)
            else:  # nothing predicted: count the ground truths COCOeval would not ignore
                num_gt = sum(1 for ann in gt.loadAnns(gt.getAnnIds(catIds=list(kind_cat_ids)))
                             if not ann.get('iscrowd', 0)
                             and (kind == 'box' or ann.get('num_keypoints', 1) > 0))
                curve = pr_f1_curve(np.zeros(0), np.zeros(0, bool), num_gt)
            best = curve['best']
            metrics[f'pr/{kind}_precision'] = best['precision']
            metrics[f'pr/{kind}_recall'] = best['recall']
            metrics[f'pr/{kind}_f1'] = best['f1']
            metrics[f'pr/{kind}_best_thr'] = best['threshold']
            logger.info(f'{title}: best F1 {best["f1"]:.4f} at confidence '
                        f'{best["threshold"]:.4f} (P {best["precision"]:.4f}, '
                        f'R {best["recall"]:.4f})')
            if extras_prefix is not None:
                save_pr_curve(curve, f'{extras_prefix}.{kind}_pr', title)
        return metrics

    def _per_keypoint(self, box_eval, box_gt: COCO, det_kpts: List[np.ndarray],
                      extras_prefix: Optional[str], logger: MMLogger) -> Dict[str, float]:
        """Per-keypoint error and PCK over ground truths matched by box IoU."""
        meta = self.dataset_meta or {}
        num_kpts = int(meta.get('num_keypoints', det_kpts[0].shape[0] if det_kpts else 0))
        id2name = meta.get('keypoint_id2name') or {}
        names = [id2name.get(k, f'kpt_{k}') for k in range(num_kpts)]
        pred_k, gt_k, sizes = [], [], []
        if box_eval is not None:
            m: DetectionMatches = detection_matches(box_eval, self.match_iou_thr, 100)
            for dt_id, gt_id in zip(m.dt_ids[m.is_tp], m.gt_ids[m.is_tp]):
                gt = box_gt.anns[int(gt_id)]
                if 'keypoints' not in gt:
                    raise ValueError(f'ground-truth annotation {gt_id} has no keypoints')
                pred_k.append(det_kpts[box_eval.cocoDt.anns[int(dt_id)]['pred_index']])
                gt_k.append(np.asarray(gt['keypoints'], dtype=np.float64).reshape(-1, 3))
                sizes.append(max(gt['bbox'][2], gt['bbox'][3]))
        for what, arr in (('predicted', pred_k), ('ground-truth', gt_k)):
            if arr and arr[0].shape[0] != num_kpts:
                raise ValueError(f'{what} poses have {arr[0].shape[0]} keypoints but the '
                                 f'dataset metainfo defines {num_kpts}')
        pred_k = np.stack(pred_k) if pred_k else np.zeros((0, num_kpts, 2))
        gt_k = np.stack(gt_k) if gt_k else np.zeros((0, num_kpts, 3))
        res = keypoint_errors(pred_k, gt_k[..., :2], gt_k[..., 2], np.asarray(sizes),
                              self.pck_thr)

        metrics = OrderedDict()
        rows = [['keypoint', 'labelled', 'mean error (px)', f'PCK@{self.pck_thr:g}']]
        for k, name in enumerate(names):
            metrics[f'kpt/{name}_err_px'] = float(res['mean_error'][k])
            metrics[f'kpt/{name}_pck'] = float(res['pck'][k])
            rows.append([name, int(res['count'][k]), f'{res["mean_error"][k]:.2f}',
                         f'{res["pck"][k]:.4f}'])
        metrics['kpt/mean_err_px'] = res['all_mean_error']
        metrics['kpt/pck'] = res['all_pck']
        metrics['kpt/num_matched'] = float(len(sizes))
        rows.append(['all', res['all_count'], f'{res["all_mean_error"]:.2f}',
                     f'{res["all_pck"]:.4f}'])
        logger.info(f'Per-keypoint errors of {len(sizes)} ground truths matched at box IoU >= '
                    f'{self.match_iou_thr} (PCK normalised by max(w, h) of the GT box):\n' +
                    AsciiTable(rows).table)
        if extras_prefix is not None:
            table = dict(
                match_iou_thr=self.match_iou_thr, pck_thr=self.pck_thr,
                pck_norm='max(w, h) of the ground-truth box', num_matched=len(sizes),
                keypoints=[
                    dict(name=name, labelled=int(res['count'][k]),
                         mean_error_px=_finite_or_none(res['mean_error'][k]),
                         pck=_finite_or_none(res['pck'][k])) for k, name in enumerate(names)
                ],
                all=dict(labelled=res['all_count'],
                         mean_error_px=_finite_or_none(res['all_mean_error']),
                         pck=_finite_or_none(res['all_pck'])))
            dump(table, f'{extras_prefix}.per_keypoint.json', indent=1)
        return metrics

    def _extras_prefix(self, logger: MMLogger) -> Optional[str]:
        """Where the curves and the table go: ``outfile_prefix``, else the log folder."""
        if self.outfile_prefix is not None:
            return self.outfile_prefix
        log_file = getattr(logger, 'log_file', None)
        if log_file:
            return osp.join(osp.dirname(log_file), 'results')
        logger.info(f'{type(self).__name__}: no outfile_prefix and no log file, the P/R/F1 '
                    f'curves and the per-keypoint table are not written to disk')
        return None


def _finite_or_none(value) -> Optional[float]:
    value = float(value)
    return value if np.isfinite(value) else None
