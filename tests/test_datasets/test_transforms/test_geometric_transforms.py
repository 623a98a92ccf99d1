"""Affine/perspective, flip and letterbox: exact keypoint motion and the back-mapping."""
import cv2
import numpy as np
import pytest
from mmpose.datasets.datasets.utils import parse_pose_metainfo

from turtle_plugin.datasets.transforms import KptLetterResize, KptRandomAffine, KptRandomFlip
from ..helpers import TURTLE_META


def affine_sample():
    img = np.zeros((60, 100, 3), np.uint8)
    img[30, 20] = 255  # one bright pixel, centre at (20.5, 30.5)
    return dict(
        img=img,
        bbox=np.array([[10., 10., 40., 40.], [95., 0., 100., 2.]], np.float32),
        category_id=np.array([1, 1]),
        keypoints=np.array([[[20.5, 30.5], [90., 50.]], [[96., 1.], [97., 1.]]], np.float32),
        keypoints_visible=np.ones((2, 2), np.float32),
        area=np.array([900., 10.], np.float32))


def test_affine_with_known_matrix(monkeypatch):
    matrix = np.array([[0., -1., 80.], [1., 0., 10.], [0., 0., 1.]])  # (x, y) -> (80 - y, 10 + x)
    transform = KptRandomAffine()
    monkeypatch.setattr(transform, 'random_matrix', lambda *args: (matrix, 1.))
    out = transform.transform(affine_sample())
    # the second box becomes (78, 105, 80, 110): below the 60-px output, dropped with its keypoints
    assert len(out['bbox']) == 1
    np.testing.assert_allclose(out['bbox'][0], [40., 20., 70., 50.])
    np.testing.assert_allclose(out['keypoints'][0], [[49.5, 30.5], [30., 100.]])
    np.testing.assert_array_equal(out['keypoints_visible'][0], [1., 0.])  # (30, 100) is off-image
    np.testing.assert_allclose(out['area'], [900.])  # rotation keeps areas
    y, x = np.unravel_index(out['img'][..., 0].argmax(), out['img'].shape[:2])
    assert (x, y) == (49, 30)  # the image moved with the keypoint it carries
    assert out['input_size'] == (100, 60)


def test_affine_draws_yolov7_parameters():
    np.random.seed(0)
    transform = KptRandomAffine(degrees=0., translate=0., scale=0.5, border=(-10, -20))
    matrix, zoom = transform.random_matrix(100, 80, 80, 40)
    assert 0.5 <= zoom <= 1.6
    # no rotation/shear/translation jitter: the input centre goes to the output centre
    np.testing.assert_allclose(matrix @ [50., 40., 1.], [40., 20., 1.])
    np.testing.assert_allclose(matrix[:2, :2], np.eye(2) * zoom)
    out = transform.transform(dict(img=np.zeros((80, 100, 3), np.uint8)))
    assert out['img'].shape == (40, 80, 3)
    with pytest.raises(ValueError, match='scale must be < 1'):
        KptRandomAffine(scale=1.)


def test_flip_twice_is_identity_and_swaps_left_right_once():
    meta = parse_pose_metainfo(dict(from_file=TURTLE_META))
    ids = meta['keypoint_name2id']
    rng = np.random.default_rng(0)
    results = dict(img=rng.integers(0, 255, (40, 50, 3), dtype=np.uint8),
                   bbox=np.array([[5., 6., 30., 20.]], np.float32),
                   keypoints=rng.uniform(0, 40, (1, 6, 2)).astype(np.float32),
                   keypoints_visible=np.array([[1, 1, 0, 1, 1, 1]], np.float32),
                   flip_indices=meta['flip_indices'])
    original = {k: v.copy() for k, v in results.items() if isinstance(v, np.ndarray)}
    flip = KptRandomFlip(prob=1.)
    once = flip.transform(dict(results))
    left, right = ids['front_left_flipper'], ids['front_right_flipper']
    np.testing.assert_allclose(once['keypoints'][0, left],
                               [50 - original['keypoints'][0, right, 0],
                                original['keypoints'][0, right, 1]])
    assert once['keypoints_visible'][0, right] == 1 and once['keypoints_visible'][0, left] == 0
    np.testing.assert_allclose(once['keypoints'][0, ids['head'], 0],
                               50 - original['keypoints'][0, ids['head'], 0])
    np.testing.assert_allclose(once['bbox'], [[20., 6., 45., 20.]])
    assert once['flip'] and once['flip_direction'] == 'horizontal'
    twice = flip.transform(dict(once))
    for key in ('img', 'keypoints_visible'):
        np.testing.assert_array_equal(twice[key], original[key])
    for key in ('bbox', 'keypoints'):  # w - (w - x) == x up to float32 rounding
        np.testing.assert_allclose(twice[key], original[key], atol=1e-5)
    vflip = KptRandomFlip(prob=1., direction='vertical').transform(dict(results))
    np.testing.assert_allclose(vflip['keypoints'][0, left, 1],
                               40 - original['keypoints'][0, right, 1])


def test_flip_needs_flip_indices():
    results = dict(img=np.zeros((4, 4, 3), np.uint8), keypoints=np.zeros((1, 2, 2), np.float32),
                   keypoints_visible=np.ones((1, 2), np.float32))
    with pytest.raises(KeyError, match='flip_indices'):
        KptRandomFlip(prob=1.).transform(results)


@pytest.mark.parametrize('size', [(200, 100), (201, 99), (40, 90)])
def test_letterbox_maps_back_exactly(size):
    w, h = size
    rng = np.random.default_rng(1)
    kpts = rng.uniform(0, 1, (3, 4, 2)) * [w, h]
    results = dict(img=rng.integers(0, 255, (h, w, 3), dtype=np.uint8), ori_shape=(h, w),
                   bbox=np.array([[0., 0., w, h]], np.float32).repeat(3, 0),
                   keypoints=kpts.astype(np.float32), keypoints_visible=np.ones((3, 4), np.float32))
    out = KptLetterResize(scale=(64, 64)).transform(results)
    assert out['img'].shape == (64, 64, 3) and out['img_shape'] == (64, 64)
    size_in = np.array(out['input_size'], np.float32)
    back = (out['keypoints'] / size_in * out['input_scale'] + out['input_center']
            - 0.5 * out['input_scale'])  # MMPose's BottomupPoseEstimator mapping
    np.testing.assert_allclose(back, kpts, atol=1e-3)
    top, bottom, left, right = out['pad_param']
    sx, sy = out['scale_factor']
    np.testing.assert_allclose((out['keypoints'] - [left, top]) / [sx, sy], kpts, atol=1e-3)
    assert top + bottom + round(h * sy) == 64 and left + right + round(w * sx) == 64
    np.testing.assert_allclose(out['bbox'][0], [left, top, 64 - right, 64 - bottom], atol=1e-4)
    assert out['keypoints_visible'].all()


def test_letterbox_pads_with_pad_val_and_no_upscaling():
    out = KptLetterResize(scale=(64, 64), pad_val=114, allow_scale_up=False).transform(
        dict(img=np.zeros((20, 40, 3), np.uint8)))
    np.testing.assert_array_equal(out['pad_param'], [22, 22, 12, 12])
    assert out['scale_factor'] == (1., 1.)
    assert (out['img'][:22] == 114).all() and (out['img'][22:42, 12:52] == 0).all()


def test_letterbox_shrinks_by_pixel_area_when_asked():
    """'area' shrinks as cv2.INTER_AREA (YOLOv7's test-time load_image), leaves the mapping
    back to the original unchanged, and enlarging stays bilinear; a checkerboard finer than the
    output grid averages to grey instead of aliasing."""
    board = (np.indices((200, 300)).sum(0) % 2 * 255).astype(np.uint8)
    img = np.repeat(board[..., None], 3, axis=2)
    linear = KptLetterResize(scale=(60, 60)).transform(dict(img=img.copy()))
    area = KptLetterResize(scale=(60, 60), shrink_interpolation='area').transform(
        dict(img=img.copy()))
    expected = cv2.resize(img, (60, 40), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(area['img'][10:50], expected)
    assert abs(float(area['img'][10:50].mean()) - 127.5) < 1.0
    assert area['img'][10:50].std() < linear['img'][10:50].std()
    for key in ('input_center', 'input_scale', 'pad_param'):
        np.testing.assert_array_equal(area[key], linear[key])
    small = img[:20, :30]
    up = KptLetterResize(scale=(60, 60), shrink_interpolation='area').transform(
        dict(img=small.copy()))
    np.testing.assert_array_equal(
        up['img'], KptLetterResize(scale=(60, 60)).transform(dict(img=small.copy()))['img'])
    with pytest.raises(ValueError, match='shrink_interpolation'):
        KptLetterResize(shrink_interpolation='cubic')
