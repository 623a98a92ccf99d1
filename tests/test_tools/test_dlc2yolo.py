"""DeepLabCut / Lightning Pose label tables to YOLO: hand-computed rows, views, multi-animal
tables, the split, the metainfo, and errors that name the csv file and line."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from mmengine.registry import init_default_scope
from mmpose.datasets.datasets.utils import parse_pose_metainfo

from turtle_plugin.datasets import (LabelSpec, YOLOKptDataset, YOLOLabelError,
                                    load_pose_metainfo, parse_label_file)

from conftest import load_tool

dlc2yolo = load_tool('dataset_converters/dlc2yolo.py')
yolo2coco = load_tool('dataset_converters/yolo2coco.py')

# one animal seen in two views: parts a/b with suffixes _top/_bot; img1 has b_bot unlabelled
SINGLE = """scorer,me,me,me,me,me,me,me,me
bodyparts,a_top,a_top,b_top,b_top,a_bot,a_bot,b_bot,b_bot
coords,x,y,x,y,x,y,x,y
labeled-data/img0.png,10,10,30,20,20,30,,
labeled-data/img1.png,50,5,98,45,1,1,2,2
"""
# two animals and a unique part, DeepLabCut's 3-column index (folder, video, image)
MULTI = """scorer,,,me,me,me,me,me,me,me,me,me,me
individuals,,,m1,m1,m1,m1,m2,m2,m2,m2,single,single
bodyparts,,,nose,nose,tail,tail,nose,nose,tail,tail,feeder,feeder
coords,,,x,y,x,y,x,y,x,y,x,y
labeled-data,vidA,img0.png,10,10,30,20,NaN,NaN,nan,nan,5,5
labeled-data,vidA,img1.png,40,10,60,30,70,20,90,40,5,5
"""


def make_project(tmp_path: Path, table: str, images, size=(50, 100)) -> Path:
    """A project folder with the table and blank images of ``size`` (height, width)."""
    for image in images:
        path = tmp_path / image
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.zeros(size, np.uint8))
    csv_file = tmp_path / 'CollectedData_me.csv'
    csv_file.write_text(table)
    return csv_file


def single_project(tmp_path):
    return make_project(tmp_path, SINGLE, ['labeled-data/img0.png', 'labeled-data/img1.png'])


def test_views_become_instances_with_hand_computed_boxes(tmp_path):
    csv_file = single_project(tmp_path)
    result = dlc2yolo.dlc_to_yolo(str(csv_file), str(tmp_path / 'out'), views=['_top', '_bot'],
                                  box_pad=0.1, box_pad_px=4)
    assert result['keypoint_names'] == ['a', 'b']
    assert result['num_images'] == {'train': 2} and result['num_instances'] == {'train': 4}
    assert result['kpt_dim'] == 2  # nothing at (0, 0), no hidden keypoints
    rows, _ = parse_label_file(tmp_path / 'out/train/labels/img0.txt',
                               LabelSpec(num_keypoints=2, num_classes=1))
    # top view: keypoints (10, 10), (30, 20) in a 100x50 image; their box is 20x10, padded by
    # max(0.1 * 20, 4) = 4 px: x 6..34, y 6..24
    np.testing.assert_allclose(rows[0], [0, 0.2, 0.3, 0.28, 0.36, 0.1, 0.2, 2, 0.3, 0.4, 2])
    # bottom view: only (20, 30) labelled: a 0x0 box padded by 4 px: 16..24, 26..34
    np.testing.assert_allclose(rows[1], [0, 0.2, 0.6, 0.08, 0.16, 0.2, 0.6, 2, 0, 0, 0])


def test_boxes_are_clipped_to_the_image(tmp_path):
    csv_file = single_project(tmp_path)
    dlc2yolo.dlc_to_yolo(str(csv_file), str(tmp_path / 'out'), views=['_top', '_bot'],
                         box_pad=0.1, box_pad_px=4)
    rows, _ = parse_label_file(tmp_path / 'out/train/labels/img1.txt',
                               LabelSpec(num_keypoints=2, num_classes=1))
    # top: (50, 5), (98, 45): 48x40, pad 4.8 -> x 45.2..100 (102.8 clipped), y 0.2..49.8
    np.testing.assert_allclose(rows[0, 1:5], [72.6 / 100, 25 / 50, 54.8 / 100, 49.6 / 50])
    # bottom: (1, 1), (2, 2): pad 4 -> x 0..6, y 0..6
    np.testing.assert_allclose(rows[1, 1:5], [0.03, 0.06, 0.06, 0.12])


def test_multi_animal_table_individuals_are_instances(tmp_path):
    csv_file = make_project(tmp_path, MULTI, ['labeled-data/vidA/img0.png',
                                              'labeled-data/vidA/img1.png'])
    result = dlc2yolo.dlc_to_yolo(str(csv_file), str(tmp_path / 'out'), box_pad_px=0,
                                  box_pad=0)
    assert result['keypoint_names'] == ['nose', 'tail']  # the unique part 'feeder' left out
    assert result['empty_instances'] == 1  # m2 has no labelled keypoint in img0
    spec = LabelSpec(num_keypoints=2, num_classes=1)
    # image names keep the video folder, so equal names in two videos do not collide
    rows0, _ = parse_label_file(tmp_path / 'out/train/labels/vidA_img0.txt', spec)
    rows1, _ = parse_label_file(tmp_path / 'out/train/labels/vidA_img1.txt', spec)
    assert len(rows0) == 1 and len(rows1) == 2
    np.testing.assert_allclose(rows1[1], [0, 0.8, 0.6, 0.2, 0.4, 0.7, 0.4, 2, 0.9, 0.8, 2])


def test_split_data_yaml_and_metainfo(tmp_path):
    csv_file = single_project(tmp_path)
    out = tmp_path / 'out'
    result = dlc2yolo.dlc_to_yolo(str(csv_file), str(out), views=['_top', '_bot'],
                                  swaps=['a:b'], sigma=0.05, val_every=2, class_name='mouse')
    assert result['num_images'] == {'train': 1, 'val': 1}  # the 2nd of each pair is val
    assert (out / 'val/images/img1.png').is_symlink() and (out / 'val/labels/img1.txt').is_file()
    data = yaml.safe_load(result['data_yaml'].read_text())
    assert data['kpt_shape'] == [2, 2] and data['flip_idx'] == [1, 0]
    assert data['names'] == {0: 'mouse'} and data['val'] == 'val/images'
    assert data['kpt_names'] == {0: ['a', 'b']}  # Ultralytics' form: names per class
    meta = parse_pose_metainfo(dict(from_file=str(result['metainfo'])))
    assert meta['flip_indices'] == [1, 0] and meta['keypoint_id2name'] == {0: 'a', 1: 'b'}
    np.testing.assert_allclose(meta['sigmas'], [0.05, 0.05])
    # the yaml alone names the keypoints as the metainfo file does, and agrees with it
    with pytest.warns(UserWarning, match=r'gives keypoint names \(kpt_names\)'):
        from_yaml = load_pose_metainfo(dict(from_file=str(result['data_yaml'])))
    assert from_yaml['keypoint_id2name'] == meta['keypoint_id2name']
    assert from_yaml['flip_indices'] == meta['flip_indices']
    init_default_scope('mmpose')
    both = YOLOKptDataset(data_yaml=str(result['data_yaml']),
                          metainfo=dict(from_file=str(result['metainfo']))).metainfo
    assert both['keypoint_id2name'] == meta['keypoint_id2name']


def test_pixels_survive_the_dataset_round_trip(tmp_path):
    """The converted split, read back as COCO, gives the table's pixel coordinates."""
    csv_file = single_project(tmp_path)
    result = dlc2yolo.dlc_to_yolo(str(csv_file), str(tmp_path / 'out'), views=['_top', '_bot'])
    coco = yolo2coco.yolo_to_coco(str(result['data_yaml']), 'train',
                                  metainfo=str(result['metainfo']))
    kpts = np.array([a['keypoints'] for a in coco['annotations']]).reshape(4, 2, 3)
    np.testing.assert_allclose(kpts[:, :, :2], [[[10, 10], [30, 20]], [[20, 30], [0, 0]],
                                                [[50, 5], [98, 45]], [[1, 1], [2, 2]]],
                               atol=1e-6)
    assert kpts[1, 1, 2] == 0 and (kpts[0, :, 2] == 2).all()


def test_one_table_per_video_in_a_deeplabcut_project(tmp_path):
    """DeepLabCut keeps a table in each labeled-data/<video>/ folder, with image paths relative
    to the project: the tables are merged, the project folder is found from where they sit."""
    tables = []
    for video in ('vidA', 'vidB'):
        folder = tmp_path / 'labeled-data' / video
        folder.mkdir(parents=True)
        tables.append(make_project(folder, MULTI.replace('vidA', video),
                                   [f'../../labeled-data/{video}/img0.png',
                                    f'../../labeled-data/{video}/img1.png']))
    result = dlc2yolo.dlc_to_yolo([str(t) for t in tables], str(tmp_path / 'out'), val_every=2)
    assert result['num_images'] == {'train': 2, 'val': 2}
    assert sorted(p.name for p in (tmp_path / 'out/val/labels').iterdir()) == \
        ['vidA_img1.txt', 'vidB_img1.txt']
    # the same image twice, and tables that disagree on the body parts, are refused
    with pytest.raises(YOLOLabelError, match='image labeled-data/vidA/img0.png is also listed at'):
        dlc2yolo.dlc_to_yolo([str(tables[0])] * 2, str(tmp_path / 'out2'))
    tables[1].write_text(MULTI.replace('vidA', 'vidB').replace('tail', 'tip'))
    with pytest.raises(YOLOLabelError, match='labels nose, tip'):
        dlc2yolo.dlc_to_yolo([str(t) for t in tables], str(tmp_path / 'out3'))


@pytest.mark.parametrize('edit, message', [
    (lambda t: t.replace('30,20,20,30', '30,20,2O,30'),
     "CollectedData_me.csv:4: column 6 (a_bot x) is '2O', not a number"),
    (lambda t: t.replace('98,45,1,1,2,2', '98,45,1,1,2'),
     'CollectedData_me.csv:5: 8 cells, the header has 9'),
    (lambda t: t.replace('98,45', '101,45'),
     'CollectedData_me.csv:5: b_top at (101, 45) lies outside the 100x50 image'),
    (lambda t: t.replace('img1.png', 'img9.png'),
     'CollectedData_me.csv:5: image '),
    (lambda t: t.replace('coords', 'coordinates'),
     "CollectedData_me.csv:3: expected the header rows scorer"),
])
def test_bad_input_names_file_and_line(tmp_path, edit, message):
    csv_file = single_project(tmp_path)
    csv_file.write_text(edit(SINGLE))
    with pytest.raises(YOLOLabelError) as err:
        dlc2yolo.dlc_to_yolo(str(csv_file), str(tmp_path / 'out'), views=['_top', '_bot'])
    assert message in str(err.value)


@pytest.mark.parametrize('kwargs, message', [
    (dict(views=['_top']), "body part 'a_bot' ends with none of the --views _top"),
    (dict(views=['_top', '_bot'], drop=['c_top']), 'not in the table: c_top'),
    (dict(views=['_top', '_bot'], drop=['b_bot']), "view '_bot' lacks body parts b"),
    (dict(views=['_top', '_bot'], swaps=['a-b']), "--swap 'a-b': expected LEFT:RIGHT"),
    (dict(views=['_top', '_bot'], swaps=['a:b', 'b:a']), 'already swapped'),
])
def test_bad_options_are_explained(tmp_path, kwargs, message):
    csv_file = single_project(tmp_path)
    with pytest.raises(YOLOLabelError, match=None) as err:
        dlc2yolo.dlc_to_yolo(str(csv_file), str(tmp_path / 'out'), **kwargs)
    assert message in str(err.value)


def test_cli(tmp_path, capsys):
    csv_file = single_project(tmp_path)
    dlc2yolo.main([str(csv_file), '--out-dir', str(tmp_path / 'out'), '--views', '_top', '_bot',
                   '--swap', 'a:b', '--val-every', '2', '--copy-images'])
    printed = capsys.readouterr().out
    assert '2 keypoints (a, b); train: 1 images, 2 instances, val: 1 images, 2 instances' \
        in printed
    assert (tmp_path / 'out/train/images/img0.png').is_file()
    assert not (tmp_path / 'out/train/images/img0.png').is_symlink()
