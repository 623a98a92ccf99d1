"""YOLO <-> COCO keypoint converters: lossless round trips, pycocotools, CLI, bad input."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import turtle_plugin  # noqa: F401
from turtle_plugin.datasets import LabelSpec, YOLOLabelError, parse_label_file
from turtle_plugin.datasets.yolo_format import read_data_yaml

from conftest import captured_warnings, load_tool

REPO = Path(__file__).resolve().parents[2]
TIGER_SAMPLE = REPO / 'data' / 'tiger_sample'  # 16 train / 8 val frames
COCO_TESTDATA = REPO / 'tests' / 'data' / 'mmpose_testdata' / 'coco'
TIGER_META = str(REPO / 'configs' / '_base_' / 'datasets' / 'tiger.py')
TIGER_YAML = f'path: {TIGER_SAMPLE}\ntrain: train\nval: val\nkpt_shape: [12, 2]\nnames: [tiger]\n'


yolo2coco = load_tool('dataset_converters/yolo2coco.py')
coco2yolo = load_tool('dataset_converters/coco2yolo.py')


def sibling_label(path: Path) -> Path:
    parts = list(path.parts)
    parts[len(parts) - 1 - parts[::-1].index('images')] = 'labels'
    return Path(*parts).with_suffix('.txt')


@pytest.mark.parametrize('split', ['train', 'val'])
def test_tiger_yolo_coco_yolo_round_trip_is_lossless(tmp_path, split):
    yaml_file = tmp_path / 'tiger.yaml'
    yaml_file.write_text(TIGER_YAML)
    coco = yolo2coco.yolo_to_coco(str(yaml_file), split, metainfo=TIGER_META,
                                  out_file=str(tmp_path / 'tiger.json'))
    assert len(coco['images']) == {'train': 16, 'val': 8}[split]
    assert coco['categories'][0]['id'] == 1 and coco['categories'][0]['name'] == 'tiger'
    result = coco2yolo.coco_to_yolo(str(tmp_path / 'tiger.json'), str(tmp_path / 'yolo'),
                                    img_dir=str(TIGER_SAMPLE), split=split, link_images=True)
    assert result['kpt_dim'] == 2  # no hidden keypoints: the user's x y layout is kept
    spec = LabelSpec(num_keypoints=12, num_classes=1)
    for img in coco['images']:
        original, _ = parse_label_file(sibling_label(TIGER_SAMPLE / img['file_name']), spec)
        regenerated, _ = parse_label_file(
            sibling_label(tmp_path / 'yolo' / 'images' / img['file_name']), spec)
        np.testing.assert_allclose(regenerated, original, rtol=0, atol=1e-9)
    # and back to COCO: the same images, sizes, boxes, keypoints, visibility, areas, categories
    again = yolo2coco.yolo_to_coco(str(result['data_yaml']), split, metainfo=TIGER_META)
    assert again['categories'] == coco['categories']
    assert [(i['id'], i['width'], i['height']) for i in again['images']] == \
        [(i['id'], i['width'], i['height']) for i in coco['images']]
    for a, b in zip(again['annotations'], coco['annotations'], strict=True):
        assert (a['id'], a['image_id'], a['category_id']) == (b['id'], b['image_id'],
                                                              b['category_id'])
        np.testing.assert_allclose(a['bbox'], b['bbox'], atol=2e-6)
        np.testing.assert_allclose(a['keypoints'], b['keypoints'], atol=2e-6)
        assert a['keypoints'][2::3] == b['keypoints'][2::3]
        assert a['area'] == pytest.approx(b['area'], abs=1e-3)


def test_converted_json_evaluates_to_perfect_scores_in_pycocotools(tmp_path):
    yaml_file = tmp_path / 'tiger.yaml'
    yaml_file.write_text(TIGER_YAML)
    out = tmp_path / 'val.json'
    yolo2coco.yolo_to_coco(str(yaml_file), 'val', metainfo=TIGER_META, out_file=str(out))
    gt = COCO(str(out))
    assert len(gt.getImgIds()) == 8 and gt.loadCats(1)[0]['keypoints'][0] == 'kpt_0'
    dets = [dict(image_id=a['image_id'], category_id=a['category_id'], bbox=a['bbox'],
                 keypoints=a['keypoints'], score=1.) for a in gt.dataset['annotations']]
    for iou_type in ('bbox', 'keypoints'):
        evaluator = COCOeval(gt, gt.loadRes(copy.deepcopy(dets)), iou_type)
        if iou_type == 'keypoints':
            evaluator.params.kpt_oks_sigmas = np.full(12, 1 / 12)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        assert evaluator.stats[0] == pytest.approx(1.0)


def test_coco_yolo_coco_round_trip_with_hidden_keypoints(tmp_path):
    src = json.loads((COCO_TESTDATA / 'test_coco.json').read_text())
    result = coco2yolo.coco_to_yolo(src, str(tmp_path / 'yolo'), img_dir=str(COCO_TESTDATA),
                                    link_images=True)
    assert result['kpt_dim'] == 3 and result['num_keypoints'] == 17  # v = 1 needs the column
    # the category's keypoint names travel as the yaml's kpt_names (Ultralytics' form) and
    # come back as the category's keypoints with no metainfo file
    assert yaml.safe_load(result['data_yaml'].read_text())['kpt_names'] == {
        0: src['categories'][0]['keypoints']}
    with pytest.warns(UserWarning, match=r'gives keypoint names \(kpt_names\)'):
        back = yolo2coco.yolo_to_coco(str(result['data_yaml']), 'train')
    assert back['categories'][0]['keypoints'] == src['categories'][0]['keypoints']
    src_images = {i['file_name']: i for i in src['images']}
    for img in back['images']:
        # the data yaml's split folder is images/, so names gain that prefix
        original = src_images[img['file_name'].removeprefix('images/')]
        assert (img['width'], img['height']) == (original['width'], original['height'])
        anns = [a for a in back['annotations'] if a['image_id'] == img['id']]
        src_anns = [a for a in src['annotations'] if a['image_id'] == original['id']]
        assert len(anns) == len(src_anns)
        for a, b in zip(anns, src_anns):
            np.testing.assert_allclose(a['bbox'], b['bbox'], atol=1e-4)
            np.testing.assert_allclose(a['keypoints'], b['keypoints'], atol=1e-4)
            # YOLO rows carry no segmentation: the area becomes 0.53 x box area
            assert a['area'] == pytest.approx(0.53 * b['bbox'][2] * b['bbox'][3], rel=1e-6)
            assert a['category_id'] == 1


def test_clis(tmp_path, capsys):
    yaml_file = tmp_path / 'tiger.yaml'
    yaml_file.write_text(TIGER_YAML.replace('kpt_shape: [12, 2]\n', ''))  # YOLOv7 style yaml
    out = tmp_path / 'val.json'
    yolo2coco.main([str(yaml_file), '--split', 'val', '--num-keypoints', '12', '--out', str(out)])
    assert 'wrote' in capsys.readouterr().out
    coco2yolo.main([str(out), '--out-dir', str(tmp_path / 'yolo'), '--kpt-dim', '3'])
    label = next((tmp_path / 'yolo').rglob('*.txt'))
    assert len(label.read_text().split()) == 5 + 12 * 3
    with pytest.raises(SystemExit):
        yolo2coco.main(['--out', str(out)])


def test_coco2yolo_bad_input(tmp_path):
    coco = dict(images=[dict(id=1, file_name='a.jpg', width=10, height=10)],
                categories=[dict(id=1, name='turtle', keypoints=['a', 'b'])],
                annotations=[dict(id=4, image_id=1, category_id=1, bbox=[1, 1, 2, 2],
                                  keypoints=[1, 1, 2, 2, 2, 2]),
                             dict(id=5, image_id=1, category_id=1, bbox=[1, 1, 2, 2],
                                  keypoints=[1, 1, 2])])
    with pytest.raises(YOLOLabelError, match=r'annotation #1 \(id 5\) has 3 keypoint values'):
        coco2yolo.coco_to_yolo(coco, str(tmp_path / 'out'))
    coco['annotations'][1].update(keypoints=[1, 1, 2, 2, 2, 2], iscrowd=1)
    coco['annotations'].append(dict(id=6, image_id=1, category_id=1, bbox=[1, 1, 0, 2],
                                    keypoints=[0] * 6))
    result = coco2yolo.coco_to_yolo(coco, str(tmp_path / 'out'))
    assert result['label_files'][0].read_text().count('\n') == 1  # crowd and empty box skipped
    del coco['images'][0]['width']
    with pytest.raises(YOLOLabelError, match='image id 1 has no width/height'):
        coco2yolo.coco_to_yolo(coco, str(tmp_path / 'out'))


def test_coco2yolo_kpt_names_only_when_the_categories_agree(tmp_path):
    """One metainfo names every class's keypoints: categories listing the same K names, each
    once, give Ultralytics' kpt_names for each; otherwise no kpt_names and a warning saying why
    (the yaml written is always one read_data_yaml accepts)."""
    def convert(cats):
        coco = dict(images=[dict(id=1, file_name='a.jpg', width=10, height=10)],
                    categories=cats, annotations=[dict(id=1, image_id=1, category_id=1,
                                                       bbox=[1, 1, 2, 2],
                                                       keypoints=[1, 1, 2, 2, 2, 2])])
        with captured_warnings() as records:
            result = coco2yolo.coco_to_yolo(coco, str(tmp_path / 'out'), num_keypoints=2)
        read_data_yaml(str(result['data_yaml']))  # never a yaml our reader refuses
        warnings = [r.getMessage() for r in records]
        return yaml.safe_load(result['data_yaml'].read_text()).get('kpt_names'), warnings

    same = [dict(id=1, name='seal', keypoints=['nose', 'tail']),
            dict(id=2, name='pup', keypoints=['nose', 'tail'])]
    assert convert(same) == ({0: ['nose', 'tail'], 1: ['nose', 'tail']}, [])
    # a category without names does not stop the others' (one metainfo names every class)
    assert convert([same[0], dict(id=2, name='pup')]) == ({0: ['nose', 'tail']}, [])
    assert convert([dict(id=1, name='seal')]) == (None, [])
    data_yaml = tmp_path / 'out' / 'data.yaml'
    for cats, why in [
            ([same[0], dict(id=2, name='pup', keypoints=['tail', 'nose'])],
             "kpt_names names the keypoints of class 1 (pup) ['tail', 'nose'] but those of class "
             "0 (seal) ['nose', 'tail']: one metainfo names the keypoints of every class; give "
             "one list, or a metainfo file"),
            ([dict(id=1, name='seal', keypoints=['nose'])],
             'kpt_names[0] has 1 names but kpt_shape says 2 keypoints'),
            ([dict(id=1, name='seal', keypoints=['paw', 'paw'])],
             "kpt_names[0] repeats ['paw']: each keypoint needs its own name"),
            ([dict(id=1, name='seal', keypoints=['nose', ''])],
             "kpt_names[0] must be a list of keypoint names, got ['nose', '']")]:
        names, warnings = convert(cats)
        assert names is None
        assert warnings == [f"coco json: the categories' keypoint names are left out of the data "
                            f'yaml, which would not read with them: data yaml {data_yaml}: {why}']
