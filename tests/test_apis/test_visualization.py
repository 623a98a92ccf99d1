"""draw_predictions: boxes, keypoints and skeleton links in the metainfo's colours (RGB in the
metainfo, BGR in the image)."""
import numpy as np
from mmengine.structures import InstanceData
from mmpose.structures import PoseDataSample

from turtle_plugin.apis import draw_predictions

META = dict(classes=('turtle', ), palette=[(255, 0, 0)],
            keypoint_colors=np.array([[0, 0, 255], [0, 255, 0], [255, 255, 255]]),
            skeleton_links=[(0, 1), (1, 2)],
            skeleton_link_colors=np.array([[255, 255, 0], [255, 0, 255]]))


def _sample(score=0.9):
    sample = PoseDataSample(metainfo=dict(ori_shape=(100, 120)))
    sample.pred_instances = InstanceData(
        bboxes=np.array([[20, 30, 100, 90]], np.float32), scores=np.array([score], np.float32),
        labels=np.array([0]),
        keypoints=np.array([[[40, 60], [80, 60], [60, 80]]], np.float32),
        keypoint_scores=np.array([[0.9, 0.9, 0.1]], np.float32))
    return sample


def test_draws_in_metainfo_colours():
    img = np.zeros((100, 120, 3), np.uint8)
    drawn = draw_predictions(img, _sample(), META, score_thr=0.3, kpt_score_thr=0.3,
                             thickness=1)
    assert img.sum() == 0  # the input is not drawn on
    assert drawn[90, 60].tolist() == [0, 0, 255]  # box bottom edge: palette red, as BGR
    assert drawn[60, 40].tolist() == [255, 0, 0]  # keypoint 0: RGB blue -> BGR
    assert drawn[60, 80].tolist() == [0, 255, 0]  # keypoint 1: green
    # link 0-1 midpoint: RGB yellow -> BGR (0, 255, 255), dimmed by anti-aliasing
    blue, green, red = drawn[60, 60].tolist()
    assert blue == 0 and green == red > 200
    # keypoint 2 scores below kpt_score_thr: neither it nor link 1-2 is drawn
    assert drawn[80, 60].tolist() == [0, 0, 0]
    assert drawn[70, 70].tolist() == [0, 0, 0]


def test_low_scoring_instances_are_not_drawn():
    img = np.zeros((100, 120, 3), np.uint8)
    assert draw_predictions(img, _sample(score=0.2), META, score_thr=0.3).sum() == 0
