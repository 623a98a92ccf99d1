"""The metainfo files parse with MMPose and give the flips, skeleton and sigmas intended; a data
yaml without one gives the metainfo derived from it, the same for every reader."""
import re

import numpy as np
import pytest
from mmpose.datasets.datasets.utils import parse_pose_metainfo

from turtle_plugin.datasets import (YOLOKptDataset, YOLOLabelError, data_yaml_metainfo,
                                    load_pose_metainfo, read_data_yaml)
from turtle_plugin.datasets.transforms.kpt_geometry import check_flip_indices
from .helpers import TIGER_META, TURTLE_META, make_split, turtle_row


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


# ---------------------------------------------------------------------------- no metainfo file
YAML = 'train: train\nval: train\nnames: [seal, pup]\nkpt_shape: [4, 2]\nflip_idx: [1, 0, 2, 3]\n'


def test_metainfo_derived_from_a_data_yaml(tmp_path):
    """Names kpt_0.., the swaps of flip_idx, sigmas 1/K, classes from names; the warning says
    how to name the keypoints."""
    yaml_file = tmp_path / 'data.yaml'
    yaml_file.write_text(YAML)
    with pytest.warns(UserWarning, match=r'names no keypoints: they are kpt_0 \.\. kpt_3, '
                      r'swapped on a flip as its flip_idx says, with OKS sigmas 1/K = 0\.250 '
                      r'.*write a metainfo file like configs/_base_/datasets/turtle\.py'):
        meta = load_pose_metainfo(dict(from_file=str(yaml_file)))
    assert [meta['keypoint_id2name'][i] for i in range(4)] == ['kpt_0', 'kpt_1', 'kpt_2', 'kpt_3']
    assert meta['flip_indices'] == [1, 0, 2, 3]
    assert {tuple(sorted(p)) for p in meta['flip_pairs']} == {(0, 1)}
    np.testing.assert_allclose(meta['sigmas'], [0.25] * 4)
    assert meta['classes'] == ('seal', 'pup') and meta['skeleton_links'] == []
    assert meta['metainfo_source'] == f'data yaml {yaml_file}'


def test_one_derived_metainfo_for_dataset_head_and_api(tmp_path):
    """A dataset given no metainfo, one given the yaml as its metainfo file, a head given the
    yaml for its sigmas and the inference API all read the same derived metainfo."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from turtle_plugin.apis import metainfo_from_config
    from turtle_plugin.models.heads import KptBranch
    yaml_file = tmp_path / 'data.yaml'
    yaml_file.write_text(YAML)
    make_split(tmp_path, {'a': turtle_row(kpts=[(0.3, 0.5, 2), (0.7, 0.5, 2), (0.5, 0.4, 2),
                                                 (0.5, 0.6, 2)]) + '\n'})
    init_default_scope('mmpose')
    with pytest.warns(UserWarning, match='names no keypoints'):
        implicit = YOLOKptDataset(data_yaml=str(yaml_file)).metainfo
        explicit = YOLOKptDataset(data_yaml=str(yaml_file),
                                  metainfo=dict(from_file=str(yaml_file))).metainfo
        branch = KptBranch(4, 2, 3, dict(type='YOLOPoseOKSLoss'), dict(type='YOLOPoseOKSLoss'),
                           kpt_sigmas=dict(from_file=str(yaml_file)))
        api = metainfo_from_config(Config(dict(test_dataloader=dict(dataset=dict(
            data_root=str(tmp_path), data_yaml='data.yaml')))), num_classes=2)
    for key in ('keypoint_id2name', 'flip_indices', 'flip_pairs', 'skeleton_links', 'classes'):
        assert implicit[key] == explicit[key] == api[key], key
    np.testing.assert_array_equal(implicit['sigmas'], explicit['sigmas'])
    np.testing.assert_array_equal(implicit['sigmas'], api['sigmas'])
    np.testing.assert_array_equal(branch.kpt_sigmas.numpy(), np.float32(implicit['sigmas']))


def test_default_metainfo_with_names_and_sigma():
    """A converter names the keypoints and sets their sigma; swaps follow the flip indices."""
    from turtle_plugin.datasets import default_pose_metainfo
    meta = parse_pose_metainfo(default_pose_metainfo(3, [2, 1, 0], names=['l', 'mid', 'r'],
                                                     sigma=0.05))
    assert meta['keypoint_id2name'] == {0: 'l', 1: 'mid', 2: 'r'}
    assert meta['flip_indices'] == [2, 1, 0]
    np.testing.assert_allclose(meta['sigmas'], [0.05] * 3)
    with pytest.raises(ValueError, match='2 keypoint names for 3 keypoints'):
        default_pose_metainfo(3, names=['a', 'b'])


# ------------------------------------------------------------- kpt_names of a data yaml
NAMED = YAML + 'kpt_names:\n  0: [nose, tail, l_ear, r_ear]\n  1: [nose, tail, l_ear, r_ear]\n'


@pytest.mark.parametrize('kpt_names', [
    '  0: [nose, tail, l_ear, r_ear]\n  1: [nose, tail, l_ear, r_ear]\n',  # Ultralytics
    '  0: [nose, tail, l_ear, r_ear]\n',  # Ultralytics, one class listed
    '  "1": [nose, tail, l_ear, r_ear]\n',  # a string key
    '  - nose\n  - tail\n  - l_ear\n  - r_ear\n',  # one list (dlc2yolo before 2026-12-03)
])
def test_metainfo_named_by_the_yaml_kpt_names(tmp_path, kpt_names):
    """Ultralytics' per-class kpt_names, or one list, name the keypoints; the swaps follow
    flip_idx under those names; the warning still says the sigmas are 1/K."""
    yaml_file = tmp_path / 'data.yaml'
    yaml_file.write_text(YAML + 'kpt_names:\n' + kpt_names)
    with pytest.warns(UserWarning, match=r'gives keypoint names \(kpt_names\), swapped on a '
                      r'flip as its flip_idx says, but no OKS sigmas or skeleton: the sigmas '
                      r'are 1/K = 0\.250'):
        meta = load_pose_metainfo(dict(from_file=str(yaml_file)))
        info = data_yaml_metainfo(read_data_yaml(yaml_file))['keypoint_info']
    assert meta['keypoint_id2name'] == {0: 'nose', 1: 'tail', 2: 'l_ear', 3: 'r_ear'}
    assert meta['flip_indices'] == [1, 0, 2, 3]  # YAML's flip_idx, whatever the names say
    assert [info[i]['swap'] for i in range(4)] == ['tail', 'nose', '', '']
    np.testing.assert_allclose(meta['sigmas'], [0.25] * 4)


@pytest.mark.parametrize('kpt_names, match', [
    ('  0: [nose, tail, l_ear]\n', r'kpt_names\[0\] has 3 names but kpt_shape says 4'),
    ('  - nose\n  - tail\n', r'kpt_names has 2 names but kpt_shape says 4'),
    ('  0: [nose, tail, l_ear, r_ear]\n  1: [nose, tail, r_ear, l_ear]\n',
     r"kpt_names names the keypoints of class 1 \(pup\) \['nose', 'tail', 'r_ear', 'l_ear'\] "
     r"but those of class 0 \(seal\) \['nose', 'tail', 'l_ear', 'r_ear'\]"),
    ('  2: [nose, tail, l_ear, r_ear]\n', r"kpt_names is keyed by class index \(0\.\.1 for names "
     r"\['seal', 'pup'\]\), got key 2"),
    ('  0: [nose, nose, l_ear, r_ear]\n', r"kpt_names\[0\] repeats \['nose'\]"),
    ('  0: nose\n', r"kpt_names\[0\] must be a list of keypoint names, got 'nose'"),
    ('  0: [nose, null, l_ear, r_ear]\n', r'kpt_names\[0\] must be a list of keypoint names'),
    ('  0: [nose, yes, l_ear, r_ear]\n', r'kpt_names\[0\] must be a list of keypoint names'),
    (' nose\n', r'kpt_names must be \{class index: \[names\]\} or a list of names, got str'),
])
def test_bad_kpt_names_name_the_yaml(tmp_path, kpt_names, match):
    yaml_file = tmp_path / 'data.yaml'
    yaml_file.write_text(YAML + 'kpt_names:\n' + kpt_names)
    with pytest.raises(YOLOLabelError, match=f'data yaml {re.escape(str(yaml_file))}: ' + match):
        read_data_yaml(yaml_file)


def test_empty_and_numbered_kpt_names(tmp_path):
    """Empty kpt_names is none; numbers name keypoints by their digits (yaml reads them as
    ints)."""
    yaml_file = tmp_path / 'data.yaml'
    yaml_file.write_text(YAML + 'kpt_names: {}\n')
    assert read_data_yaml(yaml_file)['kpt_names'] is None
    yaml_file.write_text(YAML + 'kpt_names: {0: [1, 2, 3, nose]}\n')
    assert read_data_yaml(yaml_file)['kpt_names'] == ['1', '2', '3', 'nose']
    yaml_file.write_text(YAML)
    assert read_data_yaml(yaml_file)['kpt_names'] is None


def test_kpt_names_must_agree_with_a_metainfo_file(tmp_path):
    """A metainfo file and the yaml's kpt_names in another order would train and score every
    keypoint under the wrong name: an error naming both; the same names pass."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmpose')
    make_split(tmp_path, {'a': turtle_row() + '\n'})
    names = ['head', 'front_left_flipper', 'front_right_flipper', 'rear_left_flipper',
             'rear_right_flipper', 'tail']
    yaml_file = tmp_path / 'data.yaml'
    base = 'train: train\nval: train\nnames: [turtle]\nkpt_shape: [6, 2]\n'
    yaml_file.write_text(base + f'kpt_names: {{0: {names}}}\n')
    meta = YOLOKptDataset(data_yaml=str(yaml_file), metainfo=dict(from_file=TURTLE_META)).metainfo
    assert [meta['keypoint_id2name'][i] for i in range(6)] == names
    swapped = names[:1] + names[2:3] + names[1:2] + names[3:]
    yaml_file.write_text(base + f'kpt_names: {{0: {swapped}}}\n')
    with pytest.raises(YOLOLabelError, match=(
            rf"data yaml {re.escape(str(yaml_file))} kpt_names \['head', 'front_right_flipper'"
            rf".* disagree with {re.escape(TURTLE_META)} keypoint names \['head', "
            rf"'front_left_flipper'.*remove kpt_names from the yaml")):
        YOLOKptDataset(data_yaml=str(yaml_file), metainfo=dict(from_file=TURTLE_META))
