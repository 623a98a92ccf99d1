"""Mosaic (4 and 9 images) and MixUp: where pasted keypoints land, and what stays visible."""
import numpy as np
import pytest

from turtle_plugin.datasets.transforms import KptMixUp, KptMosaic, KptMosaic9


class FakeDataset:
    """Every drawn sample is a copy of ``info`` (the image is already loaded)."""

    def __init__(self, info):
        self.info = info

    def __len__(self):
        return 5

    def get_data_info(self, index):
        return dict(self.info)


def sample(value, size=(100, 100), kpt=(30., 40.), box=(10., 10., 90., 90.)):
    w, h = size
    return dict(
        img=np.full((h, w, 3), value, np.uint8),
        bbox=np.array([box], np.float32),
        bbox_score=np.ones(1, np.float32),
        category_id=np.array([1]),
        keypoints=np.array([[kpt, (1., 1.)]], np.float32),
        keypoints_visible=np.ones((1, 2), np.float32),
        area=np.array([100.], np.float32),
        flip_indices=[0, 1],
        id=[7])


def test_mosaic_quadrant_offsets():
    results = sample(10, kpt=(30., 40.))
    results['dataset'] = FakeDataset(sample(200, kpt=(60., 70.)))
    out = KptMosaic(img_scale=(100, 100), center_ratio_range=(1., 1.)).transform(results)
    assert out['img'].shape == (200, 200, 3) and out['img_shape'] == (200, 200)
    offsets = np.array([[0, 0], [100, 0], [0, 100], [100, 100]], np.float32)
    sources = np.array([[30., 40.], [60., 70.], [60., 70.], [60., 70.]], np.float32)
    np.testing.assert_allclose(out['keypoints'][:, 0], sources + offsets)
    np.testing.assert_allclose(out['bbox'], np.hstack([offsets, offsets]) + [10, 10, 90, 90])
    assert out['keypoints_visible'].all()
    assert out['img'][50, 50, 0] == 10 and out['img'][50, 150, 0] == 200
    assert 'id' not in out  # annotation ids no longer describe the mixed instances
    assert out['dataset'] is results['dataset']  # kept for later mixing transforms


def test_mosaic_resizes_tiles_and_crops_at_the_centre():
    # 200x100 tiles are halved to 100x50; the top-left tile sits above-left of the centre
    results = sample(10, size=(200, 100), kpt=(60., 20.), box=(0., 0., 200., 100.))
    results['dataset'] = FakeDataset(sample(20, size=(200, 100), kpt=(60., 20.)))
    out = KptMosaic(img_scale=(100, 100), center_ratio_range=(1., 1.)).transform(results)
    np.testing.assert_allclose(out['keypoints'][0, 0], [30., 60.])  # 0.5 * (60, 20) + (0, 50)
    np.testing.assert_allclose(out['bbox'][0], [0., 50., 100., 100.])
    np.testing.assert_allclose(out['area'][0], 25.)  # scaled by 0.5 ** 2


def test_mosaic_off_canvas_keypoint_becomes_invisible():
    # centre at (50, 50): the top-left 100x100 tile is cropped to its bottom-right quarter
    results = sample(10, kpt=(20., 80.), box=(10., 10., 90., 90.))
    results['dataset'] = FakeDataset(sample(20))
    out = KptMosaic(img_scale=(100, 100), center_ratio_range=(.5, .5)).transform(results)
    np.testing.assert_allclose(out['keypoints'][0, 0], [-30., 30.])  # kept, but outside
    assert out['keypoints_visible'][0, 0] == 0 and out['keypoints_visible'][0, 1] == 0
    np.testing.assert_allclose(out['bbox'][0], [0., 0., 40., 40.])


def test_mosaic9_cells_and_crop():
    results = sample(10, kpt=(60., 60.), box=(0., 0., 100., 100.))
    results['dataset'] = FakeDataset(sample(200, kpt=(60., 60.), box=(0., 0., 100., 100.)))
    out = KptMosaic9(img_scale=(100, 100), crop_ratio_range=(.5, .5)).transform(results)
    assert out['img'].shape == (200, 200, 3)
    # cell origins: centre, top, top-right, right, bottom-right, bottom, bottom-left, left,
    # top-left; the crop starts at (50, 50), the keypoint sits 60 px into its cell
    cells = np.array([[100, 100], [100, 0], [200, 0], [200, 100], [200, 200], [100, 200],
                      [0, 200], [0, 100], [0, 0]], np.float32)
    assert len(out['keypoints']) == 9
    np.testing.assert_allclose(out['keypoints'][:, 0], cells + 10.)
    np.testing.assert_array_equal(out['keypoints_visible'][:, 0], [1, 1, 0, 0, 0, 0, 0, 1, 1])
    np.testing.assert_allclose(out['bbox'][0], [50., 50., 150., 150.])
    assert out['img'][100, 100, 0] == 10 and out['img'][10, 10, 0] == 200


def test_mosaic_requires_the_dataset():
    with pytest.raises(KeyError, match='results\\["dataset"\\]'):
        KptMosaic(img_scale=(100, 100)).transform(sample(10))


def test_mixup_blends_and_keeps_both_instance_sets():
    results = sample(100, kpt=(30., 40.))
    results['dataset'] = FakeDataset(sample(200, kpt=(60., 70.)))
    out = KptMixUp(alpha=1e6, beta=1e6, prob=1.).transform(results)  # ratio ~ 0.5
    assert abs(int(out['img'][0, 0, 0]) - 150) <= 1 and out['img'].dtype == np.uint8
    np.testing.assert_allclose(out['keypoints'][:, 0], [[30., 40.], [60., 70.]])
    assert out['bbox'].shape == (2, 4)


def test_mixup_needs_equal_sizes():
    results = sample(100)
    results['dataset'] = FakeDataset(sample(200, size=(50, 50)))
    with pytest.raises(ValueError, match='same size'):
        KptMixUp(prob=1.).transform(results)
