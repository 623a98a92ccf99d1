"""Builders shared by the evaluation tests: COCO keypoint ground truth, metainfo, predictions
as the evaluator hands them to a metric, and the reference COCOeval runs."""
import contextlib
import io
import json
from pathlib import Path

import numpy as np
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from xtcocotools.coco import COCO as XtCOCO
from xtcocotools.cocoeval import COCOeval as XtCOCOeval

REPO = Path(__file__).resolve().parents[2]
MMPOSE_TESTDATA = REPO / 'tests' / 'data' / 'mmpose_testdata'
TIGER_SAMPLE = REPO / 'data' / 'tiger_sample'
TURTLE_NAMES = ('head', 'front_left_flipper', 'front_right_flipper', 'rear_left_flipper',
                'rear_right_flipper', 'tail')
TURTLE_SIGMAS = (0.06, 0.08, 0.08, 0.08, 0.08, 0.06)


def pose_metainfo(names, sigmas, dataset_name='test_set', cat_name='animal'):
    """Parsed MMPose metainfo for keypoints ``names`` with ``sigmas``, plus class info."""
    info = dict(
        dataset_name=dataset_name,
        keypoint_info={
            i: dict(name=n, id=i, color=[255, 0, 0], type='', swap='')
            for i, n in enumerate(names)
        },
        skeleton_info={},
        joint_weights=[1.0] * len(names),
        sigmas=list(sigmas))
    meta = parse_pose_metainfo(info)
    meta['classes'] = (cat_name, )
    meta['CLASSES'] = [dict(id=1, name=cat_name, supercategory=cat_name, keypoints=list(names),
                            skeleton=[])]
    return meta


def make_ann(ann_id, image_id, bbox, kpts, iscrowd=0, area=None, category_id=1):
    """COCO keypoint annotation; ``kpts`` (K, 3) with visibility, ``bbox`` xywh."""
    kpts = np.asarray(kpts, dtype=float)
    return dict(id=ann_id, image_id=image_id, category_id=category_id, bbox=list(map(float, bbox)),
                area=float(bbox[2] * bbox[3] if area is None else area), iscrowd=iscrowd,
                keypoints=kpts.reshape(-1).tolist(),
                num_keypoints=int((kpts[:, 2] > 0).sum()))


def write_coco(path, images, anns, names, cat_name='animal'):
    """Write a COCO keypoint json; ``images`` as (id, width, height)."""
    data = dict(
        images=[dict(id=i, width=w, height=h, file_name=f'{i}.jpg') for i, w, h in images],
        annotations=anns,
        categories=[dict(id=1, name=cat_name, supercategory=cat_name, keypoints=list(names),
                         skeleton=[])])
    Path(path).write_text(json.dumps(data))
    return str(path)


def kpts_in_box(rng, bbox, k):
    """(K, 3) keypoints inside an xywh box, all labelled (v = 2)."""
    x, y, w, h = bbox
    pts = np.stack([x + rng.uniform(0.1, 0.9, k) * w, y + rng.uniform(0.1, 0.9, k) * h], 1)
    return np.concatenate([pts.round(1), np.full((k, 1), 2.0)], 1)


def pose_sample(img_id, ori_shape, boxes_xyxy, box_scores, kpts, kpt_scores=None, labels=None,
                ann_ids=(), raw_ann_info=None, category_id=None):
    """A PoseDataSample as a dict, the form ``Evaluator.process`` hands to metrics."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    kpts = np.asarray(kpts, dtype=np.float32)
    kpts = kpts.reshape(len(boxes), kpts.shape[-2] if kpts.ndim == 3 else -1, 2)
    if kpt_scores is None:
        kpt_scores = np.ones(kpts.shape[:2], dtype=np.float32)
    pred = dict(bboxes=boxes, bbox_scores=np.asarray(box_scores, dtype=np.float32),
                keypoints=kpts, keypoint_scores=np.asarray(kpt_scores, dtype=np.float32))
    if labels is not None:
        pred['labels'] = np.asarray(labels, dtype=np.int64)
    sample = dict(id=list(ann_ids), img_id=img_id, ori_shape=ori_shape, gt_instances=dict(),
                  pred_instances=pred, raw_ann_info=raw_ann_info)
    if category_id is not None:
        sample['category_id'] = category_id
    return sample


def quiet(fn, *args, **kwargs):
    """Call ``fn`` with COCO's stdout chatter swallowed."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def direct_box_stats(ann_file, samples):
    """pycocotools COCOeval(bbox), default parameters, on the samples' predicted boxes."""
    dets = []
    for s in samples:
        p = s['pred_instances']
        for (x1, y1, x2, y2), score in zip(p['bboxes'].tolist(), p['bbox_scores'].tolist()):
            dets.append(dict(image_id=s['img_id'], category_id=1, bbox=[x1, y1, x2 - x1, y2 - y1],
                             score=score))

    def run():
        gt = COCO(ann_file)
        ev = COCOeval(gt, gt.loadRes(dets), 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        return ev

    return quiet(run)


def direct_kpt_stats(ann_file, samples, sigmas):
    """xtcocotools COCOeval(keypoints, sigmas) on the samples' poses, scored by box score (what
    MMPose's ``score_mode='bbox'`` writes, box included)."""
    results = []
    for s in samples:
        p = s['pred_instances']
        for box, score, kpt, ks in zip(p['bboxes'].tolist(), p['bbox_scores'].tolist(),
                                       p['keypoints'], p['keypoint_scores']):
            x1, y1, x2, y2 = box
            results.append(dict(
                image_id=s['img_id'], category_id=1, score=score, bbox=[x1, y1, x2 - x1, y2 - y1],
                keypoints=np.concatenate([kpt, ks[:, None]], 1).reshape(-1).tolist()))

    def run():
        gt = XtCOCO(ann_file)
        ev = XtCOCOeval(gt, gt.loadRes(results), 'keypoints', np.array(sigmas), True)
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        return ev

    return quiet(run)
