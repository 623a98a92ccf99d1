import numpy as np
import pytest

from .helpers import TURTLE_NAMES, kpts_in_box, make_ann, pose_sample, write_coco


@pytest.fixture
def turtle_case(tmp_path):
    """K=6 ground truth with perturbed predictions: true positives, a duplicate, false positives
    (one on an image without objects), a missed object on an image without predictions, a crowd
    region, an object with unlabelled keypoints and one with none labelled.

    Returns:
        tuple: (ann_file, samples, anns by id).
    """
    rng = np.random.default_rng(0)
    k = len(TURTLE_NAMES)
    images = [(1, 640, 480), (2, 640, 480), (3, 320, 240), (4, 640, 480), (5, 500, 400)]
    boxes = {11: (1, [100, 100, 200, 150]), 12: (1, [350, 200, 120, 160]),
             21: (2, [50, 60, 300, 200]), 41: (4, [10, 10, 80, 60]),
             51: (5, [60, 50, 150, 120]), 52: (5, [300, 220, 60, 50])}
    anns = {}
    for ann_id, (img_id, box) in boxes.items():
        kpts = kpts_in_box(rng, box, k)
        if ann_id == 51:
            kpts[[1, 4], :] = 0  # two keypoints not labelled
        if ann_id == 52:
            kpts[:] = 0  # no keypoint labelled: ignored by OKS, a regular box for box AP
        anns[ann_id] = make_ann(ann_id, img_id, box, kpts)
    anns[22] = make_ann(22, 2, [400, 300, 100, 80], np.zeros((k, 3)), iscrowd=1)
    ann_file = write_coco(tmp_path / 'gt.json', images, list(anns.values()), TURTLE_NAMES)

    def jitter(ann_id, score, box_px=6.0, kpt_px=4.0):
        x, y, w, h = anns[ann_id]['bbox']
        box = np.array([x, y, x + w, y + h]) + rng.uniform(-box_px, box_px, 4)
        gt = np.asarray(anns[ann_id]['keypoints']).reshape(k, 3)[:, :2]
        if not gt.any():  # nothing labelled: put the pose inside the box
            gt = np.tile([x + w / 2, y + h / 2], (k, 1))
        return box, score, gt + rng.uniform(-kpt_px, kpt_px, (k, 2))

    per_image = {1: [jitter(11, 0.92), jitter(12, 0.81), jitter(11, 0.35, 20, 25),
                     (np.array([500., 20., 600., 90.]), 0.55, rng.uniform(500, 600, (k, 2)))],
                 2: [jitter(21, 0.74, 25, 30), jitter(22, 0.66)],
                 3: [(np.array([30., 40., 90., 120.]), 0.61, rng.uniform(30, 90, (k, 2)))],
                 4: [],
                 5: [jitter(51, 0.88), jitter(52, 0.47)]}
    raw = {i: [a for a in anns.values() if a['image_id'] == i] for i, _, _ in images}
    samples = []
    for img_id, w, h in images:
        preds = per_image[img_id]
        samples.append(pose_sample(
            img_id, (h, w), [p[0] for p in preds], [p[1] for p in preds],
            np.array([p[2] for p in preds]).reshape(len(preds), k, 2),
            kpt_scores=rng.uniform(0.3, 1.0, (len(preds), k)),
            ann_ids=[a['id'] for a in raw[img_id]], raw_ann_info=raw[img_id] or None))
    return ann_file, samples, anns
