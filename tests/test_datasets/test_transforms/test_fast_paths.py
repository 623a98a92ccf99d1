"""The speed-ups of the transforms compute what the straightforward versions compute."""
import cv2
import numpy as np

from turtle_plugin.datasets.transforms import KptHSVRandomAug, KptMixUp, KptRandomFlip
from turtle_plugin.datasets.transforms.kpt_geometry import (fitted_size, instance_arrays,
                                                            scale_instances,
                                                            translate_scale_matrix,
                                                            warp_instances)
from .test_mix_img_transforms import FakeDataset, sample

RNG = np.random.default_rng(0)
IMG = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)


def test_hsv_single_lut_matches_per_channel_luts():
    np.random.seed(5)
    gains = np.random.uniform(-1, 1, 3) * [0.015, 0.7, 0.4] + 1
    np.random.seed(5)
    out = KptHSVRandomAug().transform(dict(img=IMG.copy()))['img']
    # YOLOv7's augment_hsv, written out: split, one table per channel, merge
    x = np.arange(256, dtype=np.float64)
    hue, sat, val = cv2.split(cv2.cvtColor(IMG, cv2.COLOR_BGR2HSV))
    hsv = cv2.merge((cv2.LUT(hue, ((x * gains[0]) % 180).astype(np.uint8)),
                     cv2.LUT(sat, np.clip(x * gains[1], 0, 255).astype(np.uint8)),
                     cv2.LUT(val, np.clip(x * gains[2], 0, 255).astype(np.uint8))))
    np.testing.assert_array_equal(out, cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))


def test_flip_matches_numpy_mirror():
    for direction, mirror in (('horizontal', IMG[:, ::-1]), ('vertical', IMG[::-1])):
        out = KptRandomFlip(prob=1., direction=direction).transform(
            dict(img=IMG, flip_indices=[]))['img']
        np.testing.assert_array_equal(out, mirror)
        assert out.flags.c_contiguous


def test_mixup_matches_the_float_blend_to_one_level():
    results = sample(0)
    results['img'] = IMG[:32, :32].copy()
    other = sample(0)
    other['img'] = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    results['dataset'] = FakeDataset(other)
    np.random.seed(1)
    out = KptMixUp(prob=1.).transform(results)['img']
    np.random.seed(1)
    np.random.rand(), np.random.randint(5)  # the prob draw, the other sample's index
    ratio = np.random.beta(8., 8.)
    blend = IMG[:32, :32] * ratio + other['img'] * (1 - ratio)
    assert np.abs(out - blend).max() <= 0.5 + 1e-6  # rounded, never off by more


def test_area_gain_of_affine_and_projective_maps():
    arrays = instance_arrays(dict(bbox=np.array([[0., 0., 2., 2.], [4., 0., 6., 2.]])), 0)
    affine = np.array([[2., 1., 3.], [0., 3., 1.], [0., 0., 1.]])  # det 6 everywhere
    np.testing.assert_allclose(warp_instances(arrays, affine, (0, 0, 99, 99))['area'],
                               [24., 24.])
    proj = np.array([[1., 0., 0.], [0., 1., 0.], [0.1, 0., 1.]])  # x / w with w = 0.1 x + 1
    # gain det / w^3 at the box centres x = 1 and x = 5 (w = 1.1 and 1.5)
    np.testing.assert_allclose(warp_instances(arrays, proj, (0, 0, 99, 99))['area'],
                               [4 / 1.1**3, 4 / 1.5**3], rtol=1e-6)


def test_fitted_size():
    assert fitted_size(1280, 720, (640, 640)) == (640, 360)
    assert fitted_size(720, 1280, (256, 256)) == (144, 256)
    assert fitted_size(100, 50, (400, 400)) == (400, 200)  # enlarges too, as load_image
    assert fitted_size(1000, 1, (10, 10)) == (10, 1)  # never 0


def test_scale_instances_is_warp_instances_with_a_scale_matrix():
    results = dict(bbox=np.array([[1., 2., 30., 40.]]),
                   keypoints=np.array([[[5., 6.], [-3., 50.]]]),
                   keypoints_visible=np.ones((1, 2)), area=np.array([100.]))
    reference = warp_instances(instance_arrays(results, 2),
                               translate_scale_matrix(0.5, 0.25, 0, 0),
                               (-np.inf, -np.inf, np.inf, np.inf))
    out = scale_instances(dict(results), 0.5, 0.25)
    for key in ('bbox', 'keypoints', 'area'):
        np.testing.assert_allclose(out[key], reference[key], rtol=1e-6)
        assert out[key].dtype == np.float32
    np.testing.assert_array_equal(out['keypoints_visible'], reference['keypoints_visible'])
    assert 'bbox' not in scale_instances(dict(img=None), 2., 2.)  # absent keys stay absent
