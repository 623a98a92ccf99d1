"""Geometric invariants of the shared keypoint helpers."""
import numpy as np
import pytest

from turtle_plugin.datasets.transforms.kpt_geometry import (
    apply_matrix, box_candidates, check_flip_indices, clip_bboxes, concat_instances,
    filter_instances, flip_bboxes, flip_keypoints, instance_arrays, mark_outside_invisible,
    transform_bboxes, warp_instances)


def test_apply_matrix_affine_and_projective():
    pts = np.array([[[1., 2.], [3., -4.]]])
    rot90 = np.array([[0., -1., 10.], [1., 0., 20.]])  # (x, y) -> (10 - y, 20 + x)
    np.testing.assert_allclose(apply_matrix(pts, rot90), [[[8., 21.], [14., 23.]]])
    proj = np.array([[2., 0., 0.], [0., 2., 0.], [0., 0., 4.]])  # divides by 4 after scaling
    np.testing.assert_allclose(apply_matrix(pts, proj), pts / 2)
    with pytest.raises(ValueError, match='2x3 or 3x3'):
        apply_matrix(pts, np.eye(2))


def test_transform_bboxes_uses_all_corners():
    box = np.array([[0., 0., 4., 2.]])
    rot90 = np.array([[0., -1., 0.], [1., 0., 0.]])  # corners (0,0) (4,0) (4,2) (0,2)
    np.testing.assert_allclose(transform_bboxes(box, rot90), [[-2., 0., 0., 4.]])


def test_flip_twice_is_identity_and_swaps_partners():
    kpts = np.array([[[1., 2.], [3., 4.], [5., 6.]]], np.float32)
    vis = np.array([[1., 0., 1.]], np.float32)
    flip = [0, 2, 1]
    once, once_vis = flip_keypoints(kpts, vis, (10, 8), flip, 'horizontal')
    np.testing.assert_allclose(once, [[[9., 2.], [5., 6.], [7., 4.]]])
    np.testing.assert_allclose(once_vis, [[1., 1., 0.]])
    twice, twice_vis = flip_keypoints(once, once_vis, (10, 8), flip, 'horizontal')
    np.testing.assert_allclose(twice, kpts)
    np.testing.assert_allclose(twice_vis, vis)
    down, _ = flip_keypoints(kpts, vis, (10, 8), flip, 'vertical')
    np.testing.assert_allclose(down[0, 0], [1., 6.])
    boxes = np.array([[1., 2., 4., 6.]])
    np.testing.assert_allclose(flip_bboxes(boxes, (10, 8), 'horizontal'), [[6., 2., 9., 6.]])
    np.testing.assert_allclose(flip_bboxes(boxes, (10, 8), 'vertical'), [[1., 2., 4., 6.]])


@pytest.mark.parametrize('flip, message', [
    ([0, 1], 'has 2 entries but the dataset has 3 keypoints'),
    ([0, 1, 3], 'is not a keypoint index'),
    ([1, 2, 0], 'is not a swap'),
])
def test_check_flip_indices_errors(flip, message):
    with pytest.raises(ValueError, match=message):
        check_flip_indices(flip, 3)


def test_clip_and_mark_outside():
    boxes = clip_bboxes(np.array([[-5., 2., 12., 20.]]), (0, 0, 10, 8))
    np.testing.assert_allclose(boxes, [[0., 2., 10., 8.]])
    kpts = np.array([[[0., 0.], [10., 8.], [10.01, 4.], [5., -0.5]]])
    vis = mark_outside_invisible(kpts, np.ones((1, 4)), (0, 0, 10, 8))
    np.testing.assert_array_equal(vis, [[1., 1., 0., 0.]])  # the border counts as inside


def test_box_candidates():
    before = np.array([[0., 0., 10., 10.]] * 4)
    after = np.array([[0., 0., 10., 10.],   # unchanged: kept
                      [0., 0., 2., 10.],    # 2 px wide: not > min_size
                      [0., 0., 3., 3.],     # 9% of the area left
                      [0., 0., 100., 4.]])  # aspect ratio 25
    np.testing.assert_array_equal(box_candidates(before, after), [True, False, False, False])


def test_warp_instances_scales_area_and_hides_outside_keypoints():
    arrays = instance_arrays(
        dict(bbox=np.array([[1., 1., 3., 3.]]), keypoints=np.array([[[2., 2.], [3., 3.]]]),
             keypoints_visible=np.ones((1, 2)), area=np.array([4.])), 2)
    matrix = np.array([[2., 0., 5.], [0., 3., 0.]])  # area gain 6
    out = warp_instances(arrays, matrix, (0, 0, 10, 100))
    np.testing.assert_allclose(out['bbox'], [[7., 3., 10., 9.]])  # x2 = 11 clipped to 10
    np.testing.assert_allclose(out['keypoints'], [[[9., 6.], [11., 9.]]])
    np.testing.assert_array_equal(out['keypoints_visible'], [[1., 0.]])
    np.testing.assert_allclose(out['area'], [24.])


def test_filter_and_concat_instances_keep_rows_together():
    part = instance_arrays(
        dict(bbox=np.array([[0., 0., 1., 1.], [0., 0., 2., 2.]]), category_id=np.array([1, 2]),
             keypoints=np.arange(8.).reshape(2, 2, 2), keypoints_visible=np.ones((2, 2))), 2)
    np.testing.assert_allclose(part['area'], [1., 4.])  # defaults to the box area
    filter_instances(part, np.array([False, True]))
    np.testing.assert_array_equal(part['category_id'], [2])
    np.testing.assert_allclose(part['keypoints'], [[[4., 5.], [6., 7.]]])
    both = concat_instances([part, {}], 2)
    assert both['keypoints'].shape == (1, 2, 2) and both['bbox'].dtype == np.float32
    empty = concat_instances([], 3)
    assert empty['keypoints'].shape == (0, 3, 2) and empty['keypoints_visible'].shape == (0, 3)
