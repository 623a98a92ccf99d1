"""KptLoadImage: reduced JPEG decoding, fitting, instance scaling and the decoded-image cache."""
import cv2
import numpy as np
import pytest

from turtle_plugin.datasets import DecodedImageCache
from turtle_plugin.datasets.transforms import KptLoadImage
from turtle_plugin.datasets.transforms.loading import reduction_factor

DOT = (400.5, 300.5)  # continuous centre of the bright disc drawn by ``dot_image``


def dot_image(path, width=1280, height=720, pixel=(400, 300)):
    """A black image with a white disc centred on ``pixel`` (by default at ``DOT``)."""
    img = np.zeros((height, width, 3), np.uint8)
    cv2.circle(img, pixel, 24, (255, 255, 255), -1)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == '.jpg' else []
    assert cv2.imwrite(str(path), img, params)
    return str(path)


def centroid(img):
    """Intensity centroid in continuous coordinates (pixel i covers [i, i + 1))."""
    weight = img[..., 0].astype(np.float64)
    ys, xs = np.mgrid[:img.shape[0], :img.shape[1]]
    return np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum() + 0.5


def info(path, width=1280, height=720):
    return dict(img_path=path, width=width, height=height,
                bbox=np.array([[380., 280., 421., 321.]], np.float32),
                keypoints=np.array([[DOT, (0., 0.)]], np.float32),
                keypoints_visible=np.array([[1., 1.]], np.float32),
                area=np.array([1000.], np.float32))


class DatasetWithCache:
    def __init__(self, mb=64):
        self.image_cache = DecodedImageCache(mb * 2**20)


@pytest.mark.parametrize('size, scale, factor', [
    ((1280, 720), (640, 640), 2),   # fits exactly at 1/2
    ((1280, 720), (256, 256), 4),   # 1/5 needed: 1/4 is the largest not below it
    ((1280, 720), (160, 160), 8),
    ((1280, 720), (2000, 2000), 1),  # enlarging: full decode
    ((100, 100), (30, 30), 2),
])
def test_reduction_factor(size, scale, factor):
    assert reduction_factor(*size, scale) == factor


def test_without_fit_scale_it_is_a_plain_load(tmp_path):
    path = dot_image(tmp_path / 'a.jpg')
    out = KptLoadImage().transform(info(path))
    np.testing.assert_array_equal(out['img'], cv2.imread(path))
    assert out['img_shape'] == out['ori_shape'] == (720, 1280)
    np.testing.assert_array_equal(out['keypoints'], info(path)['keypoints'])


@pytest.mark.parametrize('reduced', [True, False])
@pytest.mark.parametrize('scale, shape, ratio', [((640, 640), (360, 640), 0.5),
                                                 ((256, 256), (144, 256), 0.2)])
def test_fit_moves_instances_with_the_image(tmp_path, reduced, scale, shape, ratio):
    path = dot_image(tmp_path / 'a.jpg')
    out = KptLoadImage(fit_scale=scale, reduced_decode=reduced).transform(info(path))
    assert out['img'].shape[:2] == out['img_shape'] == shape and out['img'].dtype == np.uint8
    assert out['ori_shape'] == (720, 1280)
    np.testing.assert_allclose(out['bbox'], [[380 * ratio, 280 * ratio, 421 * ratio,
                                              321 * ratio]], rtol=1e-6)
    np.testing.assert_allclose(out['keypoints'][0], [np.array(DOT) * ratio, (0., 0.)],
                               rtol=1e-6)
    np.testing.assert_allclose(out['area'], [1000. * ratio**2], rtol=1e-6)
    assert out['keypoints_visible'].tolist() == [[1., 1.]]  # a pure scale hides nothing
    # the keypoint stays on the disc: the pixels moved exactly as the coordinates did
    np.testing.assert_allclose(centroid(out['img']), out['keypoints'][0, 0], atol=0.1)


def test_reduced_decode_is_close_to_decode_and_resize(tmp_path):
    path = dot_image(tmp_path / 'a.jpg')
    fast = KptLoadImage(fit_scale=(256, 256)).transform(info(path))['img']
    slow = KptLoadImage(fit_scale=(256, 256), reduced_decode=False).transform(info(path))['img']
    diff = np.abs(fast.astype(int) - slow.astype(int))
    assert diff.mean() < 2 and fast.shape == slow.shape  # smoother edge, same picture


def test_png_and_stale_sizes_fall_back_to_full_decode(tmp_path):
    png = dot_image(tmp_path / 'a.png')
    out = KptLoadImage(fit_scale=(256, 256)).transform(info(png))
    np.testing.assert_allclose(out['keypoints'][0, 0], np.array(DOT) * 0.2, rtol=1e-6)
    jpg = dot_image(tmp_path / 'b.jpg')
    stale = info(jpg, width=640, height=360)  # the file is 1280x720: the 1/2 decode is refused
    out = KptLoadImage(fit_scale=(256, 256)).transform(stale)
    assert out['ori_shape'] == (720, 1280) and out['img_shape'] == (144, 256)
    np.testing.assert_allclose(out['keypoints'][0, 0], np.array(DOT) * 0.2, rtol=1e-6)


def test_odd_sizes_scale_by_the_decoded_block_size(tmp_path):
    # 1283 px at 1/4 decodes to ceil(1283 / 4) = 321 px covering 1284 source px, then 321 -> 256
    path = dot_image(tmp_path / 'a.jpg', width=1283, height=723, pixel=(1200, 650))
    results = info(path, 1283, 723)
    results['keypoints'][0, 0] = (1200.5, 650.5)
    out = KptLoadImage(fit_scale=(256, 256)).transform(results)
    new_w, new_h = int(1283 * 256 / 1283), int(723 * 256 / 1283)
    assert out['img_shape'] == (new_h, new_w)
    sx, sy = new_w / (4 * 321), new_h / (4 * 181)
    np.testing.assert_allclose(out['keypoints'][0, 0], [1200.5 * sx, 650.5 * sy], rtol=1e-6)
    # the disc is where the keypoint says; scaling by new_w / 1283 instead would be 0.2 px off
    np.testing.assert_allclose(centroid(out['img']), out['keypoints'][0, 0], atol=0.08)


def test_preloaded_image_is_fitted(tmp_path):
    results = info('unused')
    results['img'] = cv2.imread(dot_image(tmp_path / 'a.png'))
    out = KptLoadImage(fit_scale=(640, 640)).transform(results)
    assert out['img_shape'] == (360, 640)
    np.testing.assert_allclose(out['keypoints'][0, 0], np.array(DOT) / 2, rtol=1e-6)


def test_cache_reuses_the_decoded_image(tmp_path):
    path = dot_image(tmp_path / 'a.jpg')
    dataset = DatasetWithCache()
    load = KptLoadImage(fit_scale=(256, 256))
    first = load.transform(dict(info(path), dataset=dataset))
    second = load.transform(dict(info(path), dataset=dataset))
    cache = dataset.image_cache
    assert second['img'] is first['img'] and not first['img'].flags.writeable
    assert (len(cache), cache.hits, cache.misses) == (1, 1, 1)
    assert cache.nbytes == first['img'].nbytes == 144 * 256 * 3
    for key in ('bbox', 'keypoints', 'area'):  # instances are scaled on every hit
        np.testing.assert_array_equal(first[key], second[key])
    # other arguments are other entries
    KptLoadImage(fit_scale=(640, 640)).transform(dict(info(path), dataset=dataset))
    assert len(cache) == 2


def test_cache_budget_and_errors(tmp_path):
    cache = DecodedImageCache(max_bytes=100)
    assert cache.put('a', np.zeros(60, np.uint8), 'meta')
    assert not cache.put('b', np.zeros(60, np.uint8))  # would exceed 100 bytes
    assert cache.get('b') is None and cache.get('a')[1] == 'meta'
    assert (cache.hits, cache.misses, cache.nbytes) == (1, 1, 60)
    cache.clear()
    assert (len(cache), cache.nbytes, cache.hits) == (0, 0, 0)
    with pytest.raises(ValueError, match='max_bytes'):
        DecodedImageCache(-1)
    with pytest.raises(ValueError, match='fit_scale'):
        KptLoadImage(fit_scale=(0, 10))
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'not an image')
    with pytest.raises(OSError, match='cannot decode .*bad.jpg'):
        KptLoadImage(fit_scale=(64, 64)).transform(info(str(bad)))
