"""KptBoxCocoMetric against pycocotools / xtcocotools run directly, MMPose's and MMDetection's own
CocoMetric, and hand-computed P/R/F1 and per-keypoint numbers."""
import copy
import json
import math
import os.path as osp

import numpy as np
import mmpose
import pytest
import torch
from mmdet.evaluation import CocoMetric as MMDetCocoMetric
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from mmpose.evaluation import CocoMetric as MMPoseCocoMetric
from mmpose.registry import DATASETS as MMPOSE_DATASETS
from mmpose.structures import PoseDataSample

from turtle_plugin.evaluation import KptBoxCocoMetric
from ..helpers import (MMPOSE_TESTDATA, REPO, TIGER_SAMPLE, TURTLE_NAMES, TURTLE_SIGMAS,
                       direct_box_stats, direct_kpt_stats, make_ann, pose_metainfo, pose_sample,
                       quiet, write_coco)

KPT_NAMES = ('AP', 'AP .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR', 'AR .5', 'AR .75', 'AR (M)',
             'AR (L)')
BOX_NAMES = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l')
COCO_METAINFO = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', '_base_', 'datasets',
                         'coco.py')
# bottom-up models score a pose by its box and have run NMS already (MMPose's YOLOX-Pose setup)
BOTTOMUP = dict(score_mode='bbox', nms_mode='none')


def run_metric(samples, meta, **kwargs):
    metric = KptBoxCocoMetric(**kwargs)
    metric.dataset_meta = copy.deepcopy(meta)
    metric.process({}, copy.deepcopy(samples))
    return quiet(metric.evaluate, len(samples))


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key] or (math.isnan(a[key]) and math.isnan(b[key])), key


@pytest.fixture
def turtle_meta():
    return pose_metainfo(TURTLE_NAMES, TURTLE_SIGMAS)


def test_ap_equals_cocoapi_run_directly(turtle_case, turtle_meta):
    ann_file, samples, _ = turtle_case
    res = run_metric(samples, turtle_meta, ann_file=ann_file, **BOTTOMUP)
    box = direct_box_stats(ann_file, samples)
    kpt = direct_kpt_stats(ann_file, samples, TURTLE_SIGMAS)
    for i, name in enumerate(BOX_NAMES):
        assert res[f'coco/{name}'] == pytest.approx(box.stats[i], abs=1e-9), name
    for i, name in enumerate(KPT_NAMES):
        assert res[f'coco/{name}'] == pytest.approx(kpt.stats[i], abs=1e-9), name
    # the case is not degenerate: misses, false positives and a loose pose cost AP
    assert 0.3 < res['coco/bbox_mAP'] < 0.9 and 0.3 < res['coco/AP'] < 0.9


def test_gt_from_raw_ann_info_equals_ann_file(turtle_case, turtle_meta):
    ann_file, samples, _ = turtle_case
    from_file = run_metric(samples, turtle_meta, ann_file=ann_file, **BOTTOMUP)
    converted = run_metric(samples, turtle_meta, **BOTTOMUP)
    assert_same(from_file, converted)


def test_same_oks_ap_as_mmpose_and_box_ap_as_mmdet(turtle_case, turtle_meta):
    ann_file, samples, _ = turtle_case
    for mode in (BOTTOMUP, dict()):  # MMPose's defaults too: rescoring + OKS NMS
        ours = run_metric(samples, turtle_meta, ann_file=ann_file, **mode)
        mmpose = MMPoseCocoMetric(ann_file=ann_file, **mode)
        mmpose.dataset_meta = copy.deepcopy(turtle_meta)
        mmpose.process({}, copy.deepcopy(samples))
        theirs = quiet(mmpose.evaluate, len(samples))
        for name in KPT_NAMES:
            assert ours[f'coco/{name}'] == theirs[f'coco/{name}'], name
    mmdet = MMDetCocoMetric(ann_file=ann_file)
    mmdet.dataset_meta = dict(classes=('animal', ))
    det_samples = [
        dict(img_id=s['img_id'], ori_shape=s['ori_shape'],
             pred_instances=dict(bboxes=torch.from_numpy(s['pred_instances']['bboxes']),
                                 scores=torch.from_numpy(s['pred_instances']['bbox_scores']),
                                 labels=torch.zeros(len(s['pred_instances']['bboxes']),
                                                    dtype=torch.long))) for s in samples
    ]
    mmdet.process({}, det_samples)
    theirs = quiet(mmdet.evaluate, len(samples))
    for name in BOX_NAMES:  # MMDetection rounds to 3 decimals
        assert round(ours[f'coco/{name}'], 3) == theirs[f'coco/{name}'], name


def test_perfect_predictions(turtle_case, turtle_meta, tmp_path):
    ann_file, samples, anns = turtle_case
    k = len(TURTLE_NAMES)
    perfect = []
    for s in samples:
        gts = [a for a in anns.values() if a['image_id'] == s['img_id'] and not a['iscrowd']]
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in gts)]
        kpts = []
        for a in gts:
            pose = np.asarray(a['keypoints']).reshape(k, 3)[:, :2]
            if not pose.any():  # nothing labelled: any pose inside the box is ignored by OKS
                x, y, w, h = a['bbox']
                pose = np.tile([x + w / 2, y + h / 2], (k, 1))
            kpts.append(pose)
        scores = [0.5 + 0.01 * a['id'] / 10 for a in gts]
        perfect.append(pose_sample(s['img_id'], s['ori_shape'], boxes, scores,
                                   np.array(kpts).reshape(len(gts), k, 2),
                                   ann_ids=s['id'], raw_ann_info=s['raw_ann_info']))
    res = run_metric(perfect, turtle_meta, ann_file=ann_file,
                     outfile_prefix=str(tmp_path / 'perfect'), **BOTTOMUP)
    for name in ('AP', 'AP .5', 'AP .75', 'AR', 'bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75'):
        assert res[f'coco/{name}'] == 1.0, name
    for kind in ('box', 'kpt'):
        assert res[f'pr/{kind}_precision'] == res[f'pr/{kind}_recall'] == res[f'pr/{kind}_f1'] \
            == 1.0
        assert res[f'pr/{kind}_best_thr'] == pytest.approx(0.5 + 0.01 * 11 / 10)  # lowest
    for name in TURTLE_NAMES:
        # predictions are float32, as models give them: 1e-5 px of rounding
        assert res[f'kpt/{name}_err_px'] == pytest.approx(0, abs=1e-4)
        assert res[f'kpt/{name}_pck'] == 1.0
    assert res['kpt/num_matched'] == 6.0  # every non-crowd ground truth


def _three_gt_case(tmp_path):
    """One image, GTs A, B, C and four predictions with known box IoUs and OKS.

    boxes, by score: 0.9 = A (IoU 1), 0.8 near B (IoU 0.43), 0.7 near C (IoU 0.82), 0.6 = A
    again (A is taken). Poses: 0.9 = A's, 0.8 = B's (a right pose in a wrong box), 0.7 far
    from everything, 0.6 = A's again.
    """
    names = ('p0', 'p1', 'p2', 'p3', 'p4', 'p5')
    sigmas = (0.05, 0.06, 0.07, 0.08, 0.09, 0.1)
    rng = np.random.default_rng(3)
    boxes = {1: [0, 0, 100, 100], 2: [200, 0, 100, 100], 3: [0, 200, 100, 100]}
    anns = []
    for ann_id, (x, y, w, h) in boxes.items():
        kpts = np.concatenate([rng.uniform([x, y], [x + w, y + h], (6, 2)).round(1),
                               np.full((6, 1), 2.)], 1)
        anns.append(make_ann(ann_id, 7, [x, y, w, h], kpts))
    ann_file = write_coco(tmp_path / 'gt3.json', [(7, 640, 480)], anns, names)
    pose = {a['id']: np.asarray(a['keypoints']).reshape(6, 3)[:, :2] for a in anns}
    sample = pose_sample(
        7, (480, 640),
        [[0, 0, 100, 100], [240, 0, 340, 100], [0, 210, 100, 310], [0, 0, 100, 100]],
        [0.9, 0.8, 0.7, 0.6],
        np.stack([pose[1], pose[2], pose[3] + 500, pose[1]]),
        ann_ids=[1, 2, 3], raw_ann_info=anns)
    return ann_file, [sample], pose_metainfo(names, sigmas)


def test_pose_matches_are_passed_on_not_kept(tmp_path):
    """The pose COCOeval behind pr/kpt_* travels by return values: nothing of one evaluation
    stays on the metric, so a second evaluation of other predictions reports its own curve."""
    from xtcocotools.cocoeval import COCOeval as XtCOCOeval
    ann_file, samples, meta = _three_gt_case(tmp_path)
    metric = KptBoxCocoMetric(ann_file=ann_file, **BOTTOMUP)
    metric.dataset_meta = copy.deepcopy(meta)
    metric.process({}, copy.deepcopy(samples))
    first = quiet(metric.evaluate, 1)
    assert first['pr/kpt_f1'] == pytest.approx(0.8, abs=1e-12)
    assert not any(key.startswith('_') or '/_' in key for key in first)
    assert not any(isinstance(value, XtCOCOeval) for value in vars(metric).values())
    worse = copy.deepcopy(samples)
    worse[0]['pred_instances']['keypoints'][1] += 500  # the second pose misses too
    metric.process({}, worse)
    assert quiet(metric.evaluate, 1)['pr/kpt_f1'] == pytest.approx(0.5, abs=1e-12)


def test_pr_hand_computed_and_files(tmp_path):
    ann_file, samples, meta = _three_gt_case(tmp_path)
    prefix = tmp_path / 'out' / 'run'
    res = run_metric(samples, meta, ann_file=ann_file, outfile_prefix=str(prefix), **BOTTOMUP)
    # boxes TP FP TP FP, 3 GTs: best at 0.7 with P = R = F1 = 2/3 (see test_pr_curve)
    assert res['pr/box_best_thr'] == pytest.approx(0.7)
    for key in ('pr/box_precision', 'pr/box_recall', 'pr/box_f1'):
        assert res[key] == pytest.approx(2 / 3, abs=1e-12)
    # poses TP TP FP FP: at 0.8 P 1, R 2/3, F1 0.8
    assert res['pr/kpt_best_thr'] == pytest.approx(0.8)
    assert res['pr/kpt_precision'] == 1.0
    assert res['pr/kpt_recall'] == pytest.approx(2 / 3, abs=1e-12)
    assert res['pr/kpt_f1'] == pytest.approx(0.8, abs=1e-12)
    for suffix in ('keypoints.json', 'bbox.json', 'box_pr.png', 'box_pr.json', 'kpt_pr.png',
                   'kpt_pr.json', 'per_keypoint.json'):
        assert (tmp_path / 'out' / f'run.{suffix}').is_file(), suffix
    box_pr = json.loads((tmp_path / 'out' / 'run.box_pr.json').read_text())
    assert box_pr['best']['threshold'] == pytest.approx(0.7)
    assert box_pr['num_gt'] == 3 and box_pr['num_pred'] == 4
    assert len(json.loads((tmp_path / 'out' / 'run.bbox.json').read_text())) == 4
    table = json.loads((tmp_path / 'out' / 'run.per_keypoint.json').read_text())
    assert table['num_matched'] == 2 and [k['name'] for k in table['keypoints']] == \
        ['p0', 'p1', 'p2', 'p3', 'p4', 'p5']


def test_per_keypoint_hand_computed(tmp_path):
    names = ('a', 'b', 'c', 'd', 'e', 'f')
    gt1 = np.array([[10, 10, 2], [20, 20, 2], [30, 30, 1], [40, 40, 2], [50, 50, 2],
                    [60, 60, 2]], float)
    gt2 = np.array([[310, 310, 2], [320, 320, 2], [330, 330, 0], [305, 330, 2], [315, 340, 2],
                    [320, 350, 0]], float)
    anns = [make_ann(1, 3, [0, 0, 200, 100], gt1),     # PCK radius 0.05 * 200 = 10 px
            make_ann(2, 3, [300, 300, 40, 80], gt2),   # PCK radius 0.05 * 80 = 4 px
            make_ann(3, 3, [500, 400, 50, 50], gt1 + [500, 400, 0])]  # missed
    ann_file = write_coco(tmp_path / 'gt.json', [(3, 640, 480)], anns, names)
    off1 = np.array([[3, 4], [0, 0], [6, 8], [0, 9], [12, 5], [1, 0]], float)
    # errors 5, 0, 10, 9, 13, 1 px; within 10 px (strictly): y y n y n y
    off2 = np.array([[0, 3], [0, 4], [99, 99], [0, 0], [5, 12], [7, 7]], float)
    # errors 3, 4, (unlabelled), 0, 13, (unlabelled); within 4 px: y n - y n -
    kpts = np.stack([gt1[:, :2] + off1, gt2[:, :2] + off2, np.full((6, 2), 600.)])
    sample = pose_sample(3, (480, 640), [[0, 0, 200, 100], [300, 300, 340, 380],
                                         [590, 0, 640, 40]],  # last one: a false positive
                         [0.9, 0.8, 0.7], kpts, ann_ids=[1, 2, 3], raw_ann_info=anns)
    res = run_metric([sample], pose_metainfo(names, (0.05, ) * 6), ann_file=ann_file,
                     pck_thr=0.05, **BOTTOMUP)
    expect_err = {'a': (5 + 3) / 2, 'b': (0 + 4) / 2, 'c': 10, 'd': (9 + 0) / 2,
                  'e': (13 + 13) / 2, 'f': 1}
    expect_pck = {'a': 1, 'b': 0.5, 'c': 0, 'd': 1, 'e': 0, 'f': 1}
    for name in names:
        assert res[f'kpt/{name}_err_px'] == pytest.approx(expect_err[name], abs=1e-12), name
        assert res[f'kpt/{name}_pck'] == expect_pck[name], name
    assert res['kpt/mean_err_px'] == pytest.approx((5 + 0 + 10 + 9 + 13 + 1 + 3 + 4 + 0 + 13) / 10)
    assert res['kpt/pck'] == pytest.approx(6 / 10)
    assert res['kpt/num_matched'] == 2.0


def test_real_coco_testdata_k17(tmp_path):
    """MMPose's COCO test file (4 images, 14 people, some with no keypoint labelled) with COCO's own
    sigmas, through mmengine's Evaluator with real PoseDataSample objects."""
    ann_file = str(MMPOSE_TESTDATA / 'coco' / 'test_coco.json')
    data = json.loads((MMPOSE_TESTDATA / 'coco' / 'test_coco.json').read_text())
    meta = parse_pose_metainfo(dict(from_file=COCO_METAINFO))
    rng = np.random.default_rng(7)
    samples, dict_samples = [], []
    for img in data['images']:
        gts = [a for a in data['annotations'] if a['image_id'] == img['id']]
        boxes, kpts = [], []
        for a in gts[:-1] if img['id'] == 196141 else gts:  # one person missed
            x, y, w, h = a['bbox']
            boxes.append(np.array([x, y, x + w, y + h]) + rng.normal(0, 0.04 * max(w, h), 4))
            pose = np.asarray(a['keypoints'], float).reshape(17, 3)[:, :2]
            kpts.append(pose + rng.normal(0, 0.03 * max(w, h), (17, 2)))
        boxes.append(np.array([5., 5., 60., 90.]))  # a false positive in every image
        kpts.append(rng.uniform(5, 60, (17, 2)))
        n = len(boxes)
        inst = InstanceData(bboxes=np.array(boxes, np.float32),
                            bbox_scores=rng.uniform(0.2, 1, n).astype(np.float32),
                            keypoints=np.array(kpts, np.float32),
                            keypoint_scores=rng.uniform(0.2, 1, (n, 17)).astype(np.float32))
        sample = PoseDataSample(metainfo=dict(id=[a['id'] for a in gts], img_id=img['id'],
                                              ori_shape=(img['height'], img['width'])))
        sample.gt_instances = InstanceData()
        sample.pred_instances = inst
        samples.append(sample)
        dict_samples.append(sample.to_dict())
    with DefaultScope.overwrite_default_scope('mmpose'):
        evaluator = Evaluator(dict(type='KptBoxCocoMetric', ann_file=ann_file,
                                   outfile_prefix=str(tmp_path / 'coco'), **BOTTOMUP))
    evaluator.dataset_meta = meta
    evaluator.process(samples)
    res = quiet(evaluator.evaluate, len(samples))
    box = direct_box_stats(ann_file, dict_samples)
    kpt = direct_kpt_stats(ann_file, dict_samples, meta['sigmas'])
    for i, name in enumerate(BOX_NAMES):
        assert res[f'coco/{name}'] == pytest.approx(box.stats[i], abs=1e-9), name
    for i, name in enumerate(KPT_NAMES):
        assert res[f'coco/{name}'] == pytest.approx(kpt.stats[i], abs=1e-9), name
    assert 0.2 < res['coco/AP'] < 0.95 and 0.2 < res['coco/bbox_mAP'] < 0.95
    assert {f'kpt/{meta["keypoint_id2name"][i]}_pck' for i in range(17)} <= res.keys()
    assert (tmp_path / 'coco.kpt_pr.png').is_file()


def test_bottomup_category_id_arrays_are_accepted(turtle_case, turtle_meta):
    """PackPoseInputs' default meta_keys put the image's GT category ids into the sample; plain
    MMPose CocoMetric fails on them, this metric uses the single GT category."""
    ann_file, samples, _ = turtle_case
    with_ids = copy.deepcopy(samples)
    for s in with_ids:
        s['category_id'] = np.ones(len(s['id']), dtype=np.int64)
    assert_same(run_metric(samples, turtle_meta, ann_file=ann_file, **BOTTOMUP),
                run_metric(with_ids, turtle_meta, ann_file=ann_file, **BOTTOMUP))


def test_labels_map_through_classes(turtle_case, turtle_meta):
    ann_file, samples, _ = turtle_case
    labelled = copy.deepcopy(samples)
    for s in labelled:
        s['pred_instances']['labels'] = np.zeros(len(s['pred_instances']['bboxes']), np.int64)
    assert_same(run_metric(samples, turtle_meta, ann_file=ann_file, **BOTTOMUP),
                run_metric(labelled, turtle_meta, ann_file=ann_file, **BOTTOMUP))
    for s in labelled:
        s['pred_instances']['labels'][:] = 1
    with pytest.raises(ValueError, match='predicted label 1 but the ground truth maps 1'):
        run_metric(labelled, turtle_meta, ann_file=ann_file, **BOTTOMUP)


def test_no_prediction_anywhere(turtle_case, turtle_meta, tmp_path):
    ann_file, samples, _ = turtle_case
    empty = [pose_sample(s['img_id'], s['ori_shape'], [], [], np.zeros((0, 6, 2)),
                         ann_ids=s['id'], raw_ann_info=s['raw_ann_info']) for s in samples]
    res = run_metric(empty, turtle_meta, ann_file=ann_file, outfile_prefix=str(tmp_path / 'e'),
                     **BOTTOMUP)
    assert res['coco/AP'] == 0.0 and res['coco/bbox_mAP'] == 0.0
    assert res['pr/box_f1'] == 0.0 and math.isnan(res['pr/box_best_thr'])
    assert res['kpt/num_matched'] == 0.0 and math.isnan(res['kpt/head_err_px'])
    assert json.loads((tmp_path / 'e.box_pr.json').read_text())['num_gt'] == 6


def test_custom_prefix_keeps_namespaced_keys(turtle_case, turtle_meta):
    ann_file, samples, _ = turtle_case
    res = run_metric(samples, turtle_meta, ann_file=ann_file, prefix='val', **BOTTOMUP)
    assert {'val/AP', 'val/bbox_mAP', 'pr/box_f1', 'pr/kpt_best_thr', 'kpt/tail_pck',
            'kpt/mean_err_px'} <= res.keys()
    assert not [k for k in res if k.startswith('coco/')]


def test_clear_errors(turtle_case, turtle_meta):
    ann_file, samples, _ = turtle_case
    no_boxes = copy.deepcopy(samples)
    del no_boxes[0]['pred_instances']['bboxes']
    with pytest.raises(ValueError, match='needs pred_instances.bboxes'):
        run_metric(no_boxes, turtle_meta, ann_file=ann_file)
    with pytest.raises(ValueError, match='bbox_max_dets must hold'):
        KptBoxCocoMetric(ann_file=ann_file, bbox_max_dets=(10, 20))
    with pytest.raises(ValueError, match='iou_thr 0.42 is not one of'):
        run_metric(samples, turtle_meta, ann_file=ann_file, pr_iou_thr=0.42, **BOTTOMUP)


def test_samples_of_the_yolo_dataset_without_ann_file(tmp_path):
    """Real samples: YOLOKptDataset on the bundled Tiger-Pose frames (K=12) through MMPose's
    bottom-up test pipeline, whose PackPoseInputs keeps ``category_id`` arrays, ``id`` lists and
    ``raw_ann_info``; ground truth converted from the samples, compared with the COCOeval runs
    on the dataset's own COCO export."""
    with DefaultScope.overwrite_default_scope('mmpose'):
        dataset = MMPOSE_DATASETS.build(dict(
            type='YOLOKptDataset', data_root=str(TIGER_SAMPLE), data_prefix=dict(img='val/images'),
            metainfo=dict(from_file=str(REPO / 'configs/_base_/datasets/tiger.py')),
            use_cache=False, test_mode=True, indices=5,
            pipeline=[dict(type='LoadImage'),
                      dict(type='BottomupResize', input_size=(256, 256), pad_val=(114, ) * 3),
                      dict(type='PackPoseInputs')]))
        evaluator = Evaluator(dict(type='KptBoxCocoMetric', **BOTTOMUP))
    evaluator.dataset_meta = dataset.metainfo
    rng = np.random.default_rng(11)
    dict_samples = []
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        assert sample.category_id.shape == (len(sample.id), )  # what plain CocoMetric rejects
        boxes, kpts = [], []
        for ann in sample.raw_ann_info:
            x, y, w, h = ann['bbox']
            boxes.append(np.array([x, y, x + w, y + h]) + rng.normal(0, 0.05 * max(w, h), 4))
            pose = np.asarray(ann['keypoints'], float).reshape(12, 3)[:, :2]
            kpts.append(pose + rng.normal(0, 0.04 * max(w, h), (12, 2)))
        n = len(boxes)
        sample.pred_instances = InstanceData(
            bboxes=np.array(boxes, np.float32), bbox_scores=rng.uniform(0.3, 1, n),
            labels=np.zeros(n, np.int64), keypoints=np.array(kpts, np.float32),
            keypoint_scores=rng.uniform(0.3, 1, (n, 12)))
        evaluator.process([sample])
        dict_samples.append(sample.to_dict())
    res = quiet(evaluator.evaluate, len(dataset))
    coco = dataset.to_coco()
    kept = {s['img_id'] for s in dict_samples}
    coco['images'] = [img for img in coco['images'] if img['id'] in kept]
    coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] in kept]
    ann_file = tmp_path / 'tiger_val5.json'
    ann_file.write_text(json.dumps(coco))
    box = direct_box_stats(str(ann_file), dict_samples)
    kpt = direct_kpt_stats(str(ann_file), dict_samples, dataset.metainfo['sigmas'])
    for i, name in enumerate(BOX_NAMES):
        assert res[f'coco/{name}'] == pytest.approx(box.stats[i], abs=1e-9), name
    for i, name in enumerate(KPT_NAMES):
        assert res[f'coco/{name}'] == pytest.approx(kpt.stats[i], abs=1e-9), name
    assert 0 < res['coco/AP'] < 1 and res['kpt/num_matched'] >= 4
    assert {f'kpt/kpt_{i}_err_px' for i in range(12)} <= res.keys()


@pytest.fixture
def run_logger(tmp_path):
    """A logger with a log file, current while the test runs, as a Runner's is."""
    name = f'kpt_box_metric_{tmp_path.name}'
    (tmp_path / 'run').mkdir()
    logger = MMLogger.get_instance(name, log_file=str(tmp_path / 'run' / 'run.log'))
    yield logger
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
    MMLogger._instance_dict.pop(name, None)


def test_files_go_next_to_the_log_without_outfile_prefix(turtle_case, turtle_meta, run_logger,
                                                         tmp_path):
    ann_file, samples, _ = turtle_case
    assert MMLogger.get_current_instance() is run_logger
    run_metric(samples, turtle_meta, ann_file=ann_file, **BOTTOMUP)
    for suffix in ('box_pr.png', 'kpt_pr.json', 'per_keypoint.json'):
        assert (tmp_path / 'run' / f'results.{suffix}').is_file(), suffix


def test_format_only_writes_both_result_files(turtle_case, turtle_meta, tmp_path):
    ann_file, samples, _ = turtle_case
    res = run_metric(samples, turtle_meta, ann_file=ann_file, format_only=True,
                     outfile_prefix=str(tmp_path / 'sub'), **BOTTOMUP)
    assert res == {}
    boxes = json.loads((tmp_path / 'sub.bbox.json').read_text())
    poses = json.loads((tmp_path / 'sub.keypoints.json').read_text())
    assert len(boxes) == len(poses) == sum(len(s['pred_instances']['bboxes']) for s in samples)
    assert set(boxes[0]) == {'image_id', 'category_id', 'bbox', 'score'}


@pytest.mark.parametrize('use_ann_file', [True, False])
def test_repeated_evaluation_is_stable(turtle_case, turtle_meta, tmp_path, use_ann_file):
    """One metric object evaluated every epoch: the cached ground truth (and the flags COCOeval
    leaves on it) must not change later numbers."""
    ann_file, samples, _ = turtle_case
    empty = [pose_sample(s['img_id'], s['ori_shape'], [], [], np.zeros((0, 6, 2)),
                         ann_ids=s['id'], raw_ann_info=s['raw_ann_info']) for s in samples]
    metric = KptBoxCocoMetric(ann_file=ann_file if use_ann_file else None,
                              outfile_prefix=str(tmp_path / 'ep'), **BOTTOMUP)
    metric.dataset_meta = copy.deepcopy(turtle_meta)
    rounds = []
    for batch in (samples, empty, samples, empty):
        metric.process({}, copy.deepcopy(batch))
        rounds.append(quiet(metric.evaluate, len(batch)))
        rounds[-1]['num_gt'] = json.loads((tmp_path / 'ep.box_pr.json').read_text())['num_gt']
    assert_same(rounds[0], rounds[2])
    assert_same(rounds[1], rounds[3])
    assert rounds[1]['num_gt'] == rounds[3]['num_gt'] == 6
