"""Keypoint metainfo of a dataset: an MMPose metainfo file, or derived from a YOLO data yaml.

A config names its metainfo once (``metainfo = dict(from_file=...)``) and hands the same value to
the datasets (flip indices for the transforms, names and sigmas for the metric) and to the
head (OKS sigmas of the loss). ``from_file`` is either an MMPose metainfo file
(``configs/_base_/datasets/turtle.py``: names, flip pairs, skeleton, sigmas) or, for a dataset
without one, its YOLO data yaml, from which :func:`data_yaml_metainfo` derives the metainfo:
keypoints named by ``kpt_names`` or else ``kpt_0 .. kpt_{K-1}`` (``kpt_shape``), swapped as
``flip_idx`` says, sigmas ``1 / K`` each (the value Ultralytics' pose metric uses for non-COCO
skeletons, so OKS numbers compare with Ultralytics'), classes from ``names``.
"""
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence

from mmpose.datasets.datasets.utils import parse_pose_metainfo

from .transforms.kpt_geometry import check_flip_indices
from .yolo_format import DataYaml, YOLOLabelError, read_data_yaml

__all__ = ['default_pose_metainfo', 'data_yaml_metainfo', 'load_pose_metainfo', 'is_data_yaml']


def default_pose_metainfo(num_keypoints: int, flip_indices: Optional[Sequence[int]] = None,
                          dataset_name: str = 'yolo_kpt',
                          names: Optional[Sequence[str]] = None,
                          sigma: Optional[float] = None) -> Dict:
    """MMPose ``dataset_info`` for keypoints without a metainfo file.

    Keypoints are ``kpt_0 .. kpt_{K-1}`` unless named; sigmas are ``1 / K`` for every keypoint
    (the value Ultralytics' pose metric uses for non-COCO skeletons) unless given; no skeleton
    links.

    Args:
        num_keypoints (int): K.
        flip_indices (Sequence[int], optional): mirror partner of each keypoint (identity when
            omitted).
        dataset_name (str): name recorded in the metainfo.
        names (Sequence[str], optional): the K keypoint names.
        sigma (float, optional): OKS sigma of every keypoint.

    Returns:
        dict: a ``dataset_info`` dict accepted by ``parse_pose_metainfo``.
    """
    if num_keypoints < 1:
        raise ValueError(f'num_keypoints must be at least 1, got {num_keypoints}')
    flip = list(range(num_keypoints)) if flip_indices is None else \
        check_flip_indices(flip_indices, num_keypoints, 'flip_idx')
    names = [f'kpt_{i}' for i in range(num_keypoints)] if names is None else list(names)
    if len(names) != num_keypoints:
        raise ValueError(f'{len(names)} keypoint names for {num_keypoints} keypoints')
    keypoint_info = {
        i: dict(name=names[i], id=i, color=[255, 128, 0], type='',
                swap='' if flip[i] == i else names[flip[i]])
        for i in range(num_keypoints)
    }
    sigma = 1. / num_keypoints if sigma is None else float(sigma)
    return dict(dataset_name=dataset_name, keypoint_info=keypoint_info, skeleton_info={},
                joint_weights=[1.] * num_keypoints, sigmas=[sigma] * num_keypoints)


def data_yaml_metainfo(data: DataYaml, dataset_name: str = 'yolo_kpt') -> Dict:
    """The ``dataset_info`` of a YOLO data yaml that has no metainfo file, with a warning that
    says what the yaml leaves undefined and how to define it.

    Args:
        data (DataYaml): the read data yaml (:func:`read_data_yaml`); needs ``kpt_shape``.
        dataset_name (str): name recorded in the metainfo.

    Returns:
        dict: :func:`default_pose_metainfo` of ``kpt_shape[0]`` keypoints, named by the yaml's
        ``kpt_names`` (else ``kpt_0 ..``), swapped as its ``flip_idx`` says.
    """
    if data['kpt_shape'] is None:
        raise YOLOLabelError(f'data yaml {data["path"]} has no kpt_shape: give the keypoints a '
                             f'metainfo file, metainfo=dict(from_file=...)')
    num_keypoints = data['kpt_shape'][0]
    names = data['kpt_names']
    flips = 'none swapped on a flip (no flip_idx)' if data['flip_idx'] is None else \
        'swapped on a flip as its flip_idx says'
    if names is None:
        what = (f'names no keypoints: they are kpt_0 .. kpt_{num_keypoints - 1}, {flips}, '
                f'with OKS sigmas 1/K = {1 / num_keypoints:.3f} each and no skeleton. To name '
                f'them, add kpt_names to the yaml or write')
    else:
        what = (f'gives keypoint names (kpt_names), {flips}, but no OKS sigmas or skeleton: '
                f'the sigmas are 1/K = {1 / num_keypoints:.3f} each, with no skeleton. To set '
                f'them, write')
    warnings.warn(
        f'data yaml {data["path"]} {what} a metainfo file like configs/_base_/datasets/turtle.py '
        f'(names, left/right swaps, skeleton, sigmas) and set `metainfo = dict(from_file=...)` '
        f'to it in the config.', UserWarning)
    return default_pose_metainfo(num_keypoints, data['flip_idx'], dataset_name, names=names)


def is_data_yaml(path) -> bool:
    """Whether a ``from_file`` names a YOLO data yaml (rather than an MMPose metainfo file)."""
    return Path(str(path)).suffix.lower() in ('.yaml', '.yml')


def load_pose_metainfo(metainfo: dict) -> Dict:
    """A config's keypoint metainfo, parsed as MMPose parses it (``parse_pose_metainfo``).

    Args:
        metainfo (dict): ``dict(from_file=...)`` naming an MMPose metainfo file or a YOLO data
            yaml (derived by :func:`data_yaml_metainfo`; its ``names`` become ``classes``), or
            a full ``dataset_info``; an optional ``classes`` entry is kept.

    Returns:
        dict: the parsed metainfo (``num_keypoints``, ``flip_indices``, ``sigmas`` ...), with
        ``classes`` when known and ``metainfo_source`` naming where it came from.
    """
    metainfo = dict(metainfo)
    classes = metainfo.pop('classes', None)
    source = metainfo.get('from_file', 'metainfo')
    if 'from_file' in metainfo and is_data_yaml(source):
        data = read_data_yaml(source)
        parsed = parse_pose_metainfo(data_yaml_metainfo(data))
        parsed['classes'] = tuple(data['names'])
        source = f'data yaml {data["path"]}'
    else:
        parsed = parse_pose_metainfo(metainfo)
    if classes is not None:
        parsed['classes'] = tuple(classes)
    parsed['metainfo_source'] = source
    return parsed
