"""keypoint_errors on pairs with known pixel offsets."""
import numpy as np
import pytest

from turtle_plugin.evaluation.functional import keypoint_errors


def test_known_offsets():
    gt = np.array([[[10., 10.], [20., 20.], [30., 30.]],
                   [[50., 50.], [60., 60.], [70., 70.]]])
    offsets = np.array([[[3., 4.], [0., 9.], [6., 8.]],     # 5, 9, 10 px
                        [[0., 3.], [12., 5.], [40., 0.]]])  # 3, 13, (not labelled)
    visible = np.array([[2, 2, 1], [2, 1, 0]])
    sizes = np.array([200., 80.])  # PCK@0.05 radius: 10 px and 4 px, strictly below
    res = keypoint_errors(gt + offsets, gt, visible, sizes, pck_thr=0.05)
    np.testing.assert_array_equal(res['count'], [2, 2, 1])
    np.testing.assert_allclose(res['mean_error'], [(5 + 3) / 2, (9 + 13) / 2, 10])
    # kpt 0: 5<10 yes, 3<4 yes; kpt 1: 9<10 yes, 13<4 no; kpt 2: 10<10 no
    np.testing.assert_allclose(res['pck'], [1.0, 0.5, 0.0])
    assert res['all_count'] == 5
    assert res['all_mean_error'] == pytest.approx((5 + 9 + 10 + 3 + 13) / 5)
    assert res['all_pck'] == pytest.approx(3 / 5)


def test_never_labelled_keypoint_is_nan_and_no_pairs():
    gt = np.zeros((1, 2, 2))
    res = keypoint_errors(gt, gt, np.array([[1, 0]]), np.array([10.]))
    assert res['mean_error'][0] == 0 and res['pck'][0] == 1
    assert np.isnan(res['mean_error'][1]) and np.isnan(res['pck'][1])
    empty = keypoint_errors(np.zeros((0, 6, 2)), np.zeros((0, 6, 2)), np.zeros((0, 6)),
                            np.zeros(0))
    assert empty['count'].tolist() == [0] * 6 and np.isnan(empty['pck']).all()
    assert empty['all_count'] == 0 and np.isnan(empty['all_mean_error'])


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match=r'\(M, K, 2\)'):
        keypoint_errors(np.zeros((1, 6, 2)), np.zeros((1, 5, 2)), np.ones((1, 6)), np.ones(1))
