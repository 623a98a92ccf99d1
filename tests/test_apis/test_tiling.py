"""Tiled inference: window layout, the shift of each window's predictions into image pixels and
the NMS merge of the duplicates that overlapping windows produce."""
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData
from mmpose.structures import PoseDataSample

from turtle_plugin.apis import (inference_tiled, init_model, merge_tile_predictions, tile_starts,
                                tile_windows)
from turtle_plugin.apis import tiling
from .helpers import KPT_TINY


def test_tile_starts():
    # step round(256 * 0.8) = 205; the last window ends at the border
    assert tile_starts(1280, 256, 0.2) == [0, 205, 410, 615, 820, 1024]
    assert tile_starts(720, 256, 0.2) == [0, 205, 410, 464]
    assert tile_starts(512, 256, 0.) == [0, 256]
    assert tile_starts(256, 256, 0.5) == [0]
    assert tile_starts(100, 256, 0.2) == [0]
    with pytest.raises(ValueError, match='overlap'):
        tile_starts(512, 256, 1.0)


def test_tile_windows_cover_the_image():
    windows = tile_windows(600, 300, (256, 256), overlap=0.25)
    assert windows.shape == (3 * 2, 4)  # x starts 0, 192, 344; y starts 0, 44
    covered = np.zeros((300, 600), bool)
    for x0, y0, x1, y1 in windows:
        assert (x1 - x0, y1 - y0) == (256, 256)
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    small = tile_windows(100, 300, (256, 256))  # narrower than a window: cut to the image
    assert small.tolist() == [[0, 0, 100, 256], [0, 44, 100, 300]]


def _instances(boxes, scores, labels, keypoints):
    return InstanceData(bboxes=np.array(boxes, np.float32).reshape(-1, 4),
                        scores=np.array(scores, np.float32),
                        labels=np.array(labels, np.int64),
                        keypoints=np.array(keypoints, np.float32).reshape(len(scores), 1, 2))


def test_merge_shifts_and_suppresses_duplicates():
    offsets = np.array([[0, 0], [200, 0]])
    preds = [
        # the turtle at image [210, 10, 250, 50] seen by window 0 ...
        _instances([[210, 10, 250, 50], [5, 5, 15, 15]], [0.9, 0.8], [0, 0],
                   [[230, 30], [10, 10]]),
        # ... and by window 1 (offset 200), plus one of another class at the same place
        _instances([[11, 10, 51, 50], [10, 10, 50, 50]], [0.7, 0.6], [0, 1],
                   [[31, 30], [30, 30]]),
    ]
    merged = merge_tile_predictions(preds, offsets, iou_threshold=0.5)
    # window 1's class-0 box [211, 10, 251, 50] has IoU 39/41 with window 0's: suppressed;
    # the class-1 box stays (class-wise NMS)
    np.testing.assert_allclose(merged.bboxes, [[210, 10, 250, 50], [5, 5, 15, 15],
                                               [210, 10, 250, 50]])
    np.testing.assert_allclose(merged.scores, [0.9, 0.8, 0.6])
    assert merged.labels.tolist() == [0, 0, 1]
    np.testing.assert_allclose(merged.keypoints[:, 0], [[230, 30], [10, 10], [230, 30]])
    assert isinstance(merged.bboxes, np.ndarray)
    top = merge_tile_predictions(preds, offsets, iou_threshold=0.5, max_per_img=1)
    assert top.scores.tolist() == pytest.approx([0.9])


def test_merge_keeps_tensors_and_empty_windows():
    preds = [InstanceData(bboxes=torch.zeros(0, 4), scores=torch.zeros(0),
                          labels=torch.zeros(0, dtype=torch.long)),
             InstanceData(bboxes=torch.tensor([[1., 2., 3., 4.]]), scores=torch.tensor([0.5]),
                          labels=torch.tensor([0]))]
    merged = merge_tile_predictions(preds, np.array([[0, 0], [10, 20]]), iou_threshold=0.5)
    torch.testing.assert_close(merged.bboxes, torch.tensor([[11., 22., 13., 24.]]))
    with pytest.raises(ValueError, match='2 window predictions but 1 offsets'):
        merge_tile_predictions(preds, np.array([[0, 0]]), iou_threshold=0.5)


@pytest.fixture(scope='module')
def kpt_model():
    return init_model(KPT_TINY, cfg_options={'model.test_cfg.score_thr': 0.0,
                                             'model.test_cfg.max_per_img': 20})


def test_a_window_prediction_lands_at_its_global_position(kpt_model, monkeypatch):
    # A 700x500 image with one white square at [400, 300, 420, 320]. The stand-in for the
    # per-window network finds the square in each window and predicts it in window pixels;
    # every window containing it predicts it, and the merge must leave one box at the
    # square's place in the image.
    img = np.zeros((500, 700, 3), np.uint8)
    img[300:320, 400:420] = 255
    calls = []

    def fake_inference(model, crops, img_scale=None, batch_size=1):
        calls.append((len(crops), img_scale))
        samples = []
        for crop in crops:
            ys, xs = np.nonzero(crop[..., 0] == 255)
            found = len(xs) == 400  # the whole square
            box = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]] if found else []
            kpt = [[[xs.min(), ys.min()]]] if found else []
            sample = PoseDataSample(metainfo=dict(ori_shape=crop.shape[:2]))
            sample.pred_instances = InstanceData(
                bboxes=np.array(box, np.float32).reshape(-1, 4),
                scores=np.full(len(box), 0.9, np.float32),
                labels=np.zeros(len(box), np.int64),
                keypoints=np.array(kpt, np.float32).reshape(-1, 1, 2))
            samples.append(sample)
        return samples

    monkeypatch.setattr(tiling, 'inference', fake_inference)
    result = inference_tiled(kpt_model, img, overlap=0.25)
    windows = tile_windows(700, 500, (256, 256), 0.25)
    # the windows, letterboxed to the training size itself (scale 1), in one call
    assert calls == [(len(windows), (256, 256))]
    assert result.metainfo['tiles'] == windows.tolist()
    seen_in = sum(x0 <= 400 and y0 <= 300 and x1 >= 420 and y1 >= 320
                  for x0, y0, x1, y1 in windows)
    assert seen_in > 1  # duplicates to merge
    np.testing.assert_allclose(result.pred_instances.bboxes, [[400, 300, 420, 320]])
    np.testing.assert_allclose(result.pred_instances.keypoints, [[[400, 300]]])
    assert tuple(result.metainfo['ori_shape']) == (500, 700)


def test_tiled_inference_runs_the_network(kpt_model):
    img = np.random.default_rng(0).integers(0, 256, (280, 300, 3), dtype=np.uint8)
    result = inference_tiled(kpt_model, img, overlap=0.2)  # 4 windows of 256
    assert len(result.metainfo['tiles']) == 4
    pred = result.pred_instances
    assert 0 < len(pred.bboxes) <= 20  # max_per_img
    assert pred.keypoints.shape == (len(pred.bboxes), 6, 2)
    assert (np.diff(pred.scores) <= 0).all()
    assert (pred.bboxes[:, 0::2] >= 0).all() and (pred.bboxes[:, 0::2] <= 300).all()
    assert (pred.bboxes[:, 1::2] >= 0).all() and (pred.bboxes[:, 1::2] <= 280).all()
