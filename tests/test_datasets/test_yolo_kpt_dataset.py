"""YOLOKptDataset / YOLODetDataset: data infos, data yaml variants, cache, modes, both scopes."""
import json
from pathlib import Path

import numpy as np
import pytest
from mmdet.registry import DATASETS as MMDET_DATASETS
from mmengine.registry import init_default_scope
from mmpose.registry import DATASETS as MMPOSE_DATASETS

import turtle_plugin.datasets.yolo_format as yolo_format
from turtle_plugin.datasets import YOLODetDataset, YOLOKptDataset
from .helpers import (TIGER_META, TIGER_SAMPLE, TURTLE_META, TURTLE_YAML, make_split, turtle_row,
                      write_yaml)

# the bundled sample (16 train / 8 val frames), through a yaml with an absolute `path`
TIGER_YAML = (f'path: {TIGER_SAMPLE}\ntrain: train\nval: val\nkpt_shape: [12, 2]\n'
              'flip_idx: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\nnames: {0: tiger}\n')


@pytest.mark.parametrize('registry', [MMPOSE_DATASETS, MMDET_DATASETS])
@pytest.mark.parametrize('split, count', [('train', 16), ('val', 8)])
def test_tiger_pose_loads_through_the_registry(tmp_path, registry, split, count):
    yaml_file = write_yaml(tmp_path, TIGER_YAML)
    dataset = registry.build(
        dict(type='YOLOKptDataset', data_yaml=str(yaml_file), split=split,
             metainfo=dict(from_file=TIGER_META), cache_dir=str(tmp_path / 'cache')))
    assert len(dataset) == count
    assert dataset.metainfo['num_keypoints'] == 12 and dataset.metainfo['classes'] == ('tiger', )
    info = dataset.get_data_info(0)
    assert info['keypoints'].shape == (1, 12, 2) and info['keypoints_visible'].shape == (1, 12)
    assert info['bbox'].shape == (1, 4) and info['category_id'].tolist() == [1]
    assert (info['width'], info['height']) == (1280, 720)
    # the first image's label row, by hand: cls cx cy w h x1 y1 ...
    label = Path(info['img_path'].replace('/images/', '/labels/')).with_suffix('.txt')
    row = np.array(label.read_text().split(), float)
    cx, cy, w, h = row[1:5] * [1280, 720, 1280, 720]
    np.testing.assert_allclose(info['bbox'][0], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2],
                               atol=1e-3)
    np.testing.assert_allclose(info['keypoints'][0], row[5:].reshape(12, 2) * [1280, 720],
                               atol=1e-3)
    np.testing.assert_allclose(info['area'], [0.53 * w * h], rtol=1e-5)
    assert info['flip_indices'] == list(range(12))


def test_hand_computed_data_info(tmp_path):
    kpts = [(0.25, 0.5, 2), (0., 0., 2), (0.5, 0.75, 1), (0.1, 0.1, 0), (1.0, 1.0, 2),
            (0.5, 0.5, 2)]
    labels = {'a': turtle_row(box=(0.5, 0.5, 0.5, 0.5), kpts=kpts, dim=3) + '\n'}
    make_split(tmp_path, labels, width=64, height=48)
    yaml_file = write_yaml(tmp_path, TURTLE_YAML.replace('[6, 2]', '[6, 3]'))
    dataset = YOLOKptDataset(data_yaml=str(yaml_file), metainfo=dict(from_file=TURTLE_META))
    info = dataset.get_data_info(0)
    np.testing.assert_allclose(info['bbox'], [[16., 12., 48., 36.]])
    np.testing.assert_allclose(
        info['keypoints'][0],
        [[16., 24.], [0., 0.], [32., 36.], [6.4, 4.8], [64., 48.], [32., 24.]])
    # (0, 0) and v = 0 are unlabelled; v = 1 (labelled, hidden) counts as visible, as in MMPose
    np.testing.assert_array_equal(info['keypoints_visible'], [[1, 0, 1, 0, 1, 1]])
    np.testing.assert_allclose(info['area'], [0.53 * 32 * 24])
    assert info['num_keypoints'].tolist() == [4] and info['category_id'].tolist() == [1]
    ann = info['raw_ann_info'][0]
    assert ann['bbox'] == [16., 12., 32., 24.] and ann['keypoints'][6:9] == [32., 36., 1]
    assert ann['image_id'] == info['img_id'] == 1 and info['id'] == [ann['id']]


def test_default_metainfo_from_the_yaml(tmp_path):
    make_split(tmp_path, {'a': turtle_row() + '\n'})
    yaml_file = write_yaml(tmp_path, TURTLE_YAML + 'flip_idx: [0, 2, 1, 4, 3, 5]\n')
    meta = YOLOKptDataset(data_yaml=str(yaml_file)).metainfo
    assert meta['flip_indices'] == [0, 2, 1, 4, 3, 5]
    assert meta['keypoint_id2name'][1] == 'kpt_1'
    np.testing.assert_allclose(meta['sigmas'], [1 / 6] * 6)
    assert meta['CLASSES'][0]['keypoints'][5] == 'kpt_5'


def test_yaml_variants_names_list_txt_list_and_explicit_folders(tmp_path):
    images = make_split(tmp_path, {'a': turtle_row() + '\n', 'b': turtle_row(cls=1) + '\n'})
    (tmp_path / 'train.txt').write_text('./train/images/b.jpg\n')
    yaml_file = write_yaml(tmp_path, 'train: train.txt\nnc: 2\nnames: [turtle, nest]\n'
                           'kpt_shape: [6, 2]\n')
    dataset = YOLOKptDataset(data_yaml=str(yaml_file), metainfo=dict(from_file=TURTLE_META))
    assert len(dataset) == 1 and dataset.get_data_info(0)['category_id'].tolist() == [2]
    assert dataset.metainfo['classes'] == ('turtle', 'nest')
    # no yaml: image folder + a label folder elsewhere
    labels = tmp_path / 'elsewhere'
    labels.mkdir()
    (labels / 'a.txt').write_text(turtle_row() + '\n' + turtle_row(box=(.2, .2, .1, .1)) + '\n')
    dataset = YOLOKptDataset(data_root=str(tmp_path), data_prefix=dict(img='train/images',
                                                                       label='elsewhere'),
                             metainfo=dict(from_file=TURTLE_META, classes=('turtle', )))
    assert [len(dataset.get_data_info(i)['bbox']) for i in range(2)] == [2, 0]
    assert dataset.scan_report['missing_labels'] == [str(labels / 'b.txt')]
    assert Path(dataset.get_data_info(0)['img_path']) == images / 'a.jpg'


def test_label_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    make_split(tmp_path, {'a': turtle_row() + '\n', 'b': turtle_row() + '\n'})
    yaml_file = write_yaml(tmp_path, TURTLE_YAML)
    kwargs = dict(data_yaml=str(yaml_file), metainfo=dict(from_file=TURTLE_META))
    first = YOLOKptDataset(**kwargs)
    cache = tmp_path / 'train' / 'labels.train.turtle_cache.json'
    assert cache.is_file() and len(json.loads(cache.read_text())['entries']) == 2

    real_parse = yolo_format.parse_label_file
    parsed = []
    monkeypatch.setattr(yolo_format, 'parse_label_file',
                        lambda path, spec: parsed.append(Path(path).name) or real_parse(path, spec))
    again = YOLOKptDataset(**kwargs)
    assert parsed == []  # everything came from the cache
    np.testing.assert_array_equal(again.get_data_info(0)['bbox'], first.get_data_info(0)['bbox'])

    (tmp_path / 'train' / 'labels' / 'b.txt').write_text(turtle_row(box=(.5, .5, .25, .25)) +
                                                         '\n')
    changed = YOLOKptDataset(**kwargs)
    assert parsed == ['b.txt']  # only the changed file is parsed again
    np.testing.assert_allclose(changed.get_data_info(1)['bbox'], [[24., 18., 40., 30.]])
    # entries parsed under other rules (here: the coordinate tolerance) are not reused
    YOLOKptDataset(**kwargs, coord_tolerance=0.02)
    assert parsed == ['b.txt', 'a.txt', 'b.txt']
    YOLOKptDataset(**kwargs, coord_tolerance=0.02, use_cache=False)
    assert parsed == ['b.txt', 'a.txt', 'b.txt', 'a.txt', 'b.txt']


def test_topdown_mode_and_filters(tmp_path):
    make_split(tmp_path, {'a': turtle_row() + '\n' + turtle_row(box=(.3, .3, .2, .2)) + '\n',
                          'b': ''})
    yaml_file = write_yaml(tmp_path, TURTLE_YAML)
    kwargs = dict(data_yaml=str(yaml_file), metainfo=dict(from_file=TURTLE_META))
    assert len(YOLOKptDataset(**kwargs)) == 2
    assert len(YOLOKptDataset(**kwargs, filter_cfg=dict(filter_empty_gt=True))) == 1
    assert len(YOLOKptDataset(**kwargs, filter_cfg=dict(filter_empty_gt=True),
                              test_mode=True)) == 2
    assert len(YOLOKptDataset(**kwargs, filter_cfg=dict(min_size=48))) == 2  # 64x48 images
    with pytest.raises(ValueError, match='left none of the 2 samples'):
        YOLOKptDataset(**kwargs, filter_cfg=dict(min_size=49))
    topdown = YOLOKptDataset(**kwargs, data_mode='topdown')
    assert len(topdown) == 2
    infos = [topdown.get_data_info(i) for i in range(2)]
    assert [i['bbox'].shape for i in infos] == [(1, 4), (1, 4)]
    assert infos[0]['id'] != infos[1]['id'] and infos[0]['img_id'] == infos[1]['img_id']


def test_det_dataset_feeds_mmdet_pipeline(tmp_path):
    make_split(tmp_path, {'a': turtle_row(box=(.5, .5, .5, .5)) + '\n'})
    yaml_file = write_yaml(tmp_path, TURTLE_YAML)
    init_default_scope('mmdet')
    dataset = MMDET_DATASETS.build(dict(
        type='YOLODetDataset', data_yaml=str(yaml_file), metainfo=dict(from_file=TURTLE_META),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                  dict(type='PackDetInputs')]))
    assert isinstance(dataset, YOLODetDataset)
    assert dataset.get_data_info(0)['instances'] == [
        dict(bbox=[16., 12., 48., 36.], bbox_label=0, ignore_flag=0)]
    gt = dataset[0]['data_samples'].gt_instances
    np.testing.assert_allclose(gt.bboxes.tensor.numpy(), [[16., 12., 48., 36.]])
    assert gt.labels.tolist() == [0]


def test_to_coco_matches_the_data_infos(tmp_path):
    make_split(tmp_path, {'a': turtle_row() + '\n', 'b': '', 'c': turtle_row(cls=0) + '\n'})
    yaml_file = write_yaml(tmp_path, TURTLE_YAML)
    dataset = YOLOKptDataset(data_yaml=str(yaml_file), metainfo=dict(from_file=TURTLE_META))
    path = dataset.dump_coco_json(str(tmp_path / 'gt.json'))
    coco = json.loads(Path(path).read_text())
    assert [img['id'] for img in coco['images']] == [1, 2, 3]
    assert [img['file_name'] for img in coco['images']][0] == 'train/images/a.jpg'
    assert coco['categories'][0]['keypoints'][0] == 'head'
    assert coco['categories'][0]['skeleton'][0] == [1, 2]  # 1-based head -> front_left_flipper
    anns = [a for i in range(len(dataset)) for a in dataset.get_data_info(i)['raw_ann_info']]
    assert anns == coco['annotations']
