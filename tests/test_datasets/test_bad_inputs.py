"""Every bad-input case of docs/data.md: a clear error naming the place, or a logged skip."""
import pytest

from turtle_plugin.datasets import (LabelSpec, YOLOKptDataset, YOLOLabelError, parse_label_file,
                                    validate_coco_keypoints)

from conftest import captured_warnings
from .helpers import TURTLE_META, TURTLE_YAML, make_split, turtle_row, write_image, write_yaml


def load(tmp_path, labels, yaml_body=TURTLE_YAML, **kwargs):
    make_split(tmp_path, labels, width=64, height=48)
    yaml_file = write_yaml(tmp_path, yaml_body)
    return YOLOKptDataset(data_yaml=str(yaml_file), metainfo=dict(from_file=TURTLE_META),
                          use_cache=False, **kwargs)


def label_file(tmp_path, name='a'):
    return str(tmp_path / 'train' / 'labels' / f'{name}.txt')


@pytest.mark.parametrize('row, message', [
    (turtle_row() + ' 0.5', r'a.txt:2: 18 columns, expected 17 \(cls cx cy w h \+ 6 x 2'),
    (turtle_row().replace('0.25', 'abc', 1), r"a.txt:2: column 6 is not a number: 'abc'"),
    (turtle_row().replace('0.25', 'nan', 1), r'a.txt:2: column 6 is nan \(NaN or infinite\)'),
    (turtle_row().replace('0.25', 'inf', 1), r'a.txt:2: column 6 is inf'),
    (turtle_row(box=(0.5, 1.2, 0.5, 0.5)), r'a.txt:2: column 3 = 1.2 is outside \[0, 1\]'),
    (turtle_row().replace('0.35', '-0.05', 1), r'a.txt:2: column 8 = -0.05 is outside'),
    (turtle_row(cls=1), r'a.txt:2: class id 1 is not an integer in \[0, 0\] \(1 classes\)'),
    (turtle_row(cls=-1), r'a.txt:2: class id -1'),
    (turtle_row().replace('0 ', '0.5 ', 1), r'a.txt:2: class id 0.5'),
])
def test_bad_rows_are_errors_naming_file_and_line(tmp_path, row, message):
    with pytest.raises(YOLOLabelError, match=message):
        load(tmp_path, {'a': turtle_row() + '\n' + row + '\n'})


def test_bad_visibility_and_fixed_kpt_dim(tmp_path):
    spec = LabelSpec(num_keypoints=1, num_classes=1, kpt_dim=3)
    path = tmp_path / 'x.txt'
    path.write_text('0 0.5 0.5 0.2 0.2 0.5 0.5 3\n')
    with pytest.raises(YOLOLabelError, match=r'x.txt:1: keypoint visibility must be 0, 1 or 2'):
        parse_label_file(path, spec)
    path.write_text('0 0.5 0.5 0.2 0.2 0.5 0.5\n')  # x y row where the yaml says [K, 3]
    with pytest.raises(YOLOLabelError, match=r'x.txt:1: 7 columns, expected 8'):
        parse_label_file(path, spec)


def test_small_overshoot_is_tolerated_and_clipped(tmp_path):
    dataset = load(tmp_path, {'a': turtle_row(box=(0.5, 0.5, 1.005, 0.5)) + '\n'})
    bbox = dataset.get_data_info(0)['bbox']
    assert bbox[0, 0] == 0 and bbox[0, 2] == 64  # clipped to the image


@pytest.mark.parametrize('content, reason', [
    (b'this is not an image', 'not a readable image'),
    (None, 'truncated JPEG'),
])
def test_unreadable_or_truncated_image_is_skipped_and_logged(tmp_path, content, reason):
    make_split(tmp_path, {'good': turtle_row() + '\n'})
    bad = write_image(tmp_path / 'train' / 'images' / 'bad.jpg', 64, 48)
    bad.write_bytes(content if content is not None else bad.read_bytes()[:-200])
    (tmp_path / 'train' / 'labels' / 'bad.txt').write_text(turtle_row() + '\n')
    with captured_warnings() as records:
        dataset = load(tmp_path, {})
    assert len(dataset) == 1 and dataset.get_data_info(0)['img_path'].endswith('good.jpg')
    assert len(dataset.scan_report['skipped']) == 1 and reason in dataset.scan_report['skipped'][0]
    assert any('bad.jpg' in r.getMessage() and reason in r.getMessage() for r in records)


def test_truncated_png_is_skipped(tmp_path):
    make_split(tmp_path, {'good': turtle_row() + '\n'})
    bad = write_image(tmp_path / 'train' / 'images' / 'bad.png', 64, 48)
    bad.write_bytes(bad.read_bytes()[:-30])
    dataset = load(tmp_path, {})
    assert len(dataset) == 1 and 'truncated PNG' in dataset.scan_report['skipped'][0]


def test_image_without_label_file_is_kept_empty_and_logged(tmp_path):
    with captured_warnings() as records:
        dataset = load(tmp_path, {'a': turtle_row() + '\n', 'b': None})
    assert len(dataset) == 2 and dataset.get_data_info(1)['bbox'].shape == (0, 4)
    assert dataset.get_data_info(1)['keypoints'].shape == (0, 6, 2)
    assert dataset.scan_report['missing_labels'] == [label_file(tmp_path, 'b')]
    assert any('without a label file' in r.getMessage() for r in records)


def test_empty_label_file_is_an_image_without_objects(tmp_path):
    dataset = load(tmp_path, {'a': '', 'b': '\n  \n'})
    assert [len(dataset.get_data_info(i)['bbox']) for i in range(2)] == [0, 0]
    assert dataset.scan_report == dict(skipped=[], missing_labels=[], warnings=[])


def test_duplicate_rows_warn_and_dedupe(tmp_path):
    row = turtle_row()
    with captured_warnings() as records:
        dataset = load(tmp_path, {'a': f'{row}\n{turtle_row(box=(.3, .3, .2, .2))}\n{row}\n'})
    assert len(dataset.get_data_info(0)['bbox']) == 2
    assert dataset.scan_report['warnings'] == [
        f'{label_file(tmp_path)}: 1 duplicate row(s) removed']
    assert any('duplicate' in r.getMessage() for r in records)


def test_degenerate_box_row_is_skipped_with_warning(tmp_path):
    dataset = load(tmp_path, {'a': turtle_row(box=(.5, .5, 0., .2)) + '\n' + turtle_row() + '\n'})
    assert len(dataset.get_data_info(0)['bbox']) == 1
    assert dataset.scan_report['warnings'][0].startswith(f'{label_file(tmp_path)}:1: degenerate')


def test_yaml_pointing_to_missing_folder(tmp_path):
    with pytest.raises(YOLOLabelError, match=r"split entry 'nowhere' points to a missing folder"):
        load(tmp_path, {'a': ''}, yaml_body='train: nowhere\nnames: [turtle]\n')
    with pytest.raises(YOLOLabelError, match=r"has no 'val' split"):
        load(tmp_path, {'a': ''}, yaml_body='train: train\nnames: [turtle]\n', split='val')
    with pytest.raises(YOLOLabelError, match='does not exist'):
        YOLOKptDataset(data_yaml=str(tmp_path / 'missing.yaml'),
                       metainfo=dict(from_file=TURTLE_META))


@pytest.mark.parametrize('yaml_extra, message', [
    ('flip_idx: [0, 2, 1, 4, 3]\n', 'flip_idx has 5 entries but kpt_shape says 6 keypoints'),
    ('flip_idx: [0, 2, 1, 4, 3, 4]\n', 'flip_idx is not a swap'),
    ('flip_idx: [0, 1, 2, 3, 4, 5]\n', 'disagrees with .*turtle.py flip_indices'),
])
def test_flip_pairs_inconsistent_with_k(tmp_path, yaml_extra, message):
    with pytest.raises(ValueError, match=message):
        load(tmp_path, {'a': ''}, yaml_body=TURTLE_YAML + yaml_extra)


def test_yaml_and_metainfo_disagree(tmp_path):
    with pytest.raises(YOLOLabelError, match=r'kpt_shape \[12, 2\] but .*turtle.py defines 6'):
        load(tmp_path, {'a': ''}, yaml_body=TURTLE_YAML.replace('[6, 2]', '[12, 2]'))
    with pytest.raises(YOLOLabelError, match='nc is 2 but names lists 1'):
        load(tmp_path, {'a': ''}, yaml_body=TURTLE_YAML + 'nc: 2\n')
    with pytest.raises(YOLOLabelError, match='"names"'):
        load(tmp_path, {'a': ''}, yaml_body='train: train\n')


def test_no_images_and_no_keypoint_definition(tmp_path):
    (tmp_path / 'train').mkdir()
    with pytest.raises(YOLOLabelError, match="no images found for split 'train'"):
        load(tmp_path, {})
    yaml_file = write_yaml(tmp_path, 'train: train\nnames: [turtle]\n')
    with pytest.raises(YOLOLabelError, match='no keypoint definition'):
        YOLOKptDataset(data_yaml=str(yaml_file))


def test_coco_keypoints_of_wrong_length():
    anns = [dict(id=5, keypoints=[1, 2, 2] * 6), dict(id=9, keypoints=[1, 2, 2] * 5)]
    with pytest.raises(YOLOLabelError,
                       match=r'ann.json: annotation #1 \(id 9\) has 15 keypoint values, '
                       r'expected 18 \(6 keypoints x 3\)'):
        validate_coco_keypoints(anns, 6, 'ann.json')
