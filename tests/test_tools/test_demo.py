"""tools/demo.py on a folder of images and on a short video: the drawings, the annotated video
and the JSON records it writes."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from turtle_plugin.apis import init_model

from conftest import load_tool

REPO = Path(__file__).resolve().parents[2]
KPT_TINY = str(REPO / 'configs' / 'turtle_kpt_tiny.py')


demo = load_tool('demo.py')


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / 'kpt.pth'
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(dict(state_dict=init_model(KPT_TINY).state_dict()), path)
    return str(path)


def _check_record(record, height, width, score_thr):
    """Checks one image's record; returns its number of instances."""
    assert (record['height'], record['width']) == (height, width)
    assert len(record['keypoint_names']) == 6
    for instance in record['instances']:
        x1, y1, x2, y2 = instance['bbox']
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
        assert instance['score'] >= score_thr
        assert instance['label_name'] == 'turtle'
        assert len(instance['keypoints']) == len(instance['keypoint_scores']) == 6
    return len(record['instances'])


def test_folder_of_images(tmp_path, checkpoint):
    folder = tmp_path / 'imgs'
    folder.mkdir()
    gen = np.random.default_rng(0)
    cv2.imwrite(str(folder / 'a.png'), gen.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / 'b.jpg'), gen.integers(0, 256, (90, 200, 3), dtype=np.uint8))
    (folder / 'notes.txt').write_text('not an image')
    out = tmp_path / 'out'
    written = demo.main([KPT_TINY, checkpoint, str(folder), '--out-dir', str(out),
                         '--score-thr', '0.05'])
    names = ['a.jpg', 'a.json', 'b.jpg', 'b.json']
    found = 0
    assert written == [out / n for n in names]
    assert sorted(p.name for p in out.iterdir()) == names
    for stem, (height, width) in [('a', (120, 160)), ('b', (90, 200))]:
        assert cv2.imread(str(out / f'{stem}.jpg')).shape == (height, width, 3)
        record = json.loads((out / f'{stem}.json').read_text())
        assert record['img_path'] == str(folder / ('a.png' if stem == 'a' else 'b.jpg'))
        found += _check_record(record, height, width, 0.05)
    assert found > 0  # the random model predicts something: the checks above checked it


def test_video(tmp_path, checkpoint):
    video = tmp_path / 'clip.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 5., (160, 96))
    for i in range(3):
        writer.write(np.full((96, 160, 3), 60 * i, np.uint8))
    writer.release()
    out = tmp_path / 'out'
    written = demo.main([KPT_TINY, checkpoint, str(video), '--out-dir', str(out),
                         '--score-thr', '0.05', '--img-scale', '160', '96', '--deploy'])
    assert written == [out / 'clip.mp4', out / 'clip.json']
    capture = cv2.VideoCapture(str(out / 'clip.mp4'))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame.shape)
    capture.release()
    assert frames == [(96, 160, 3)] * 3
    record = json.loads((out / 'clip.json').read_text())
    assert record['fps'] == pytest.approx(5.)
    assert [f['frame_index'] for f in record['frames']] == [0, 1, 2]
    assert sum(_check_record(frame, 96, 160, 0.05) for frame in record['frames']) > 0


def test_rejects_unknown_inputs(tmp_path, checkpoint):
    (tmp_path / 'notes.txt').write_text('x')
    with pytest.raises(ValueError, match='neither an image'):
        demo.main([KPT_TINY, checkpoint, str(tmp_path / 'notes.txt'), '--out-dir',
                   str(tmp_path / 'o')])
    with pytest.raises(FileNotFoundError, match='no images'):
        demo.main([KPT_TINY, checkpoint, str(tmp_path), '--out-dir', str(tmp_path / 'o')])
