"""The metainfo files parse with MMPose and give the flips, skeleton and sigmas intended."""
import numpy as np
from mmpose.datasets.datasets.utils import parse_pose_metainfo

from turtle_plugin.datasets.transforms.kpt_geometry import check_flip_indices
from .helpers import TIGER_META, TURTLE_META


def test_turtle_metainfo():
    meta = parse_pose_metainfo(dict(from_file=TURTLE_META))
    assert meta['num_keypoints'] == 6
    assert [meta['keypoint_id2name'][i] for i in range(6)] == [
        'head', 'front_left_flipper', 'front_right_flipper', 'rear_left_flipper',
        'rear_right_flipper', 'tail']
    assert meta['flip_indices'] == [0, 2, 1, 4, 3, 5]
    assert {tuple(sorted(p)) for p in meta['flip_pairs']} == {(1, 2), (3, 4)}
    check_flip_indices(meta['flip_indices'], 6)
    assert len(meta['skeleton_links']) == 6
    assert ((meta['sigmas'] >= 0.05) & (meta['sigmas'] <= 0.1)).all()
    assert len(meta['dataset_keypoint_weights']) == 6


def test_tiger_metainfo():
    meta = parse_pose_metainfo(dict(from_file=TIGER_META))
    assert meta['num_keypoints'] == 12 and meta['flip_indices'] == list(range(12))
    assert meta['keypoint_id2name'][11] == 'kpt_11'
    np.testing.assert_allclose(meta['sigmas'], np.full(12, 1 / 12), rtol=1e-6)
    assert all(0 <= a < 12 and 0 <= b < 12 for a, b in meta['skeleton_links'])
