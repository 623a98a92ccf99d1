"""HSV jitter, instance filtering, the detection key mapping, and registration in both scopes."""
import numpy as np
import pytest
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS
from mmpose.registry import TRANSFORMS as MMPOSE_TRANSFORMS

from turtle_plugin.datasets.transforms import (KptFilterAnnotations, KptHSVRandomAug,
                                               KptToDetAnnotations)
from turtle_plugin.datasets.transforms import __all__ as transform_names


@pytest.mark.parametrize('name', transform_names)
def test_registered_in_both_scopes(name):
    assert MMDET_TRANSFORMS.get(name) is MMPOSE_TRANSFORMS.get(name) is not None


def test_hsv_value_gain_on_a_grey_image():
    np.random.seed(3)
    gain = np.random.uniform(-1, 1, 3)[2] * 0.4 + 1  # the draw the transform makes
    np.random.seed(3)
    kpts = np.ones((1, 2, 2), np.float32)
    out = KptHSVRandomAug(hue=0.015, saturation=0.7, value=0.4).transform(
        dict(img=np.full((8, 8, 3), 100, np.uint8), keypoints=kpts))
    # grey has no hue or saturation: only the value LUT acts
    assert (out['img'] == np.uint8(np.clip(100 * gain, 0, 255))).all()
    assert out['keypoints'] is kpts
    with pytest.raises(ValueError, match='uint8 BGR'):
        KptHSVRandomAug().transform(dict(img=np.zeros((4, 4), np.uint8)))


def test_filter_drops_small_boxes_with_their_keypoints():
    results = dict(bbox=np.array([[0., 0., 10., 10.], [0., 0., 2., 10.], [0., 0., 10., 10.]]),
                   category_id=np.array([1, 2, 3]),
                   keypoints=np.arange(12.).reshape(3, 2, 2),
                   keypoints_visible=np.array([[1., 1.], [1., 1.], [0., 1.]]))
    out = KptFilterAnnotations(min_box_size=2., min_visible_keypoints=2).transform(dict(results))
    np.testing.assert_array_equal(out['category_id'], [1])
    np.testing.assert_allclose(out['keypoints'], [[[0., 1.], [2., 3.]]])
    assert KptFilterAnnotations(min_box_size=50, keep_empty=False).transform(dict(results)) is None


def test_det_key_mapping_feeds_mmdet_pack():
    results = dict(img=np.zeros((10, 12, 3), np.uint8), img_id=3, img_shape=(10, 12),
                   ori_shape=(10, 12), scale_factor=(1., 1.),
                   bbox=np.array([[1., 2., 5., 6.], [0., 0., 3., 3.]], np.float32),
                   category_id=np.array([1, 2]))
    packed = PackDetInputs().transform(KptToDetAnnotations().transform(results))
    gt = packed['data_samples'].gt_instances
    np.testing.assert_allclose(gt.bboxes.tensor.numpy(), results['bbox'])
    assert gt.labels.tolist() == [0, 1]
    raw = KptToDetAnnotations(box_type=None).transform(dict(results))
    assert isinstance(raw['gt_bboxes'], np.ndarray) and raw['gt_ignore_flags'].tolist() == [0, 0]
