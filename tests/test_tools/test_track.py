"""tools/track.py end to end: a tiny keypoint model trained here for a few steps on bundled tiger
frames, run on a short real clip made of the bundled frames; the outputs must exist and agree
with each other. Plus the tool's errors for an unreadable video and a mismatched checkpoint."""
import json
import os
from pathlib import Path

import cv2
import pandas as pd
import pytest
import sleap_io as sio
import torch

from turtle_plugin.apis import read_dlc_csv
from turtle_plugin.testing import train_briefly

from conftest import load_tool

REPO = Path(__file__).resolve().parents[2]
TIGER_TINY = str(REPO / 'configs' / 'tiger_kpt_tiny.py')
SAMPLE = REPO / 'data' / 'tiger_sample'


track = load_tool('track.py')


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _clip(path: Path, size=(640, 360), fps=5.) -> int:
    """The 24 bundled frames in video order (Frame_1, Frame_7, ...) as a clip; returns its
    number of frames."""
    frames = sorted((SAMPLE / split / 'images' / name for split in ('train', 'val')
                     for name in os.listdir(SAMPLE / split / 'images')),
                    key=lambda p: int(p.stem.split('_')[1]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
    for frame in frames:
        writer.write(cv2.resize(cv2.imread(str(frame)), size))
    writer.release()
    return len(frames)


@pytest.mark.slow
def test_whole_tool_on_a_real_clip(tmp_path):
    ckpt = tmp_path / 'tiger.pth'
    train_briefly(TIGER_TINY, ckpt, num_images=8, steps=40)
    num_frames = _clip(tmp_path / 'clip.mp4')
    out = track.main([TIGER_TINY, str(ckpt), str(tmp_path / 'clip.mp4'), '--out-dir',
                      str(tmp_path / 'out'), '--batch-size', '4', '--score-thr', '0.05',
                      '--high-thr', '0.3', '--track-thr', '0.3', '--lost-frames', '5'])
    assert sorted(out) == ['dlc', 'long', 'nwb', 'record', 'slp', 'summary', 'trajectories',
                           'video']
    for path in out.values():
        assert path.is_file() and path.stat().st_size > 0, path

    dlc = read_dlc_csv(out['dlc'])
    long = pd.read_csv(out['long'])
    summary = pd.read_csv(out['summary'])
    record = json.loads(out['record'].read_text())
    assert len(dlc) == num_frames == record['frames']  # one row per frame
    dlc_ids = sorted(int(name.split('_')[1]) for name in
                     dlc.columns.get_level_values('individuals').unique())
    assert dlc_ids, 'the briefly trained model tracked nothing'
    # the same tracks everywhere: DeepLabCut CSV, long CSV, summary, drawn on the video
    assert dlc_ids == sorted(long['track_id'].unique()) == summary['track_id'].tolist() == \
        record['drawn_ids']
    assert summary['frames'].sum() * 12 == len(long)
    assert dlc.columns.get_level_values('bodyparts').unique().tolist() == \
        [f'kpt_{k}' for k in range(12)]
    # the DLC cells hold the long table's (smoothed) keypoints
    row = long.iloc[0]
    cell = dlc.loc[row.frame, (dlc.columns[0][0], f'track_{row.track_id}', row.keypoint)]
    assert cell[['x', 'y', 'likelihood']].tolist() == pytest.approx(
        [row.x, row.y, row.keypoint_score], abs=1e-4)
    labels = sio.load_slp(str(out['slp']), open_videos=False)
    assert sorted(t.name for t in labels.tracks) == [f'track_{i}' for i in dlc_ids]
    assert sum(len(f.instances) for f in labels.labeled_frames) == summary['frames'].sum()
    capture = cv2.VideoCapture(str(out['video']))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == num_frames
    capture.release()
    assert cv2.imread(str(out['trajectories'])) is not None
    assert record['likelihood'] == 'instance score'  # the tiger config's head is K*2


def test_tool_errors(tmp_path):
    (tmp_path / 'broken.mp4').write_bytes(b'\x00' * 100)
    with pytest.raises(ValueError, match='could not read a frame of .*broken.mp4'):
        track.main([TIGER_TINY, 'unused.pth', str(tmp_path / 'broken.mp4')])
    _clip(tmp_path / 'clip.mp4', size=(64, 36))
    from turtle_plugin.apis import init_model
    turtle = init_model(str(REPO / 'configs' / 'turtle_kpt_tiny.py'))
    torch.save(dict(state_dict=turtle.state_dict()), tmp_path / 'turtle.pth')
    with pytest.raises(ValueError, match='keypoint branch .* predicts other keypoints'):
        track.main([TIGER_TINY, str(tmp_path / 'turtle.pth'), str(tmp_path / 'clip.mp4'),
                    '--out-dir', str(tmp_path / 'out')])


def test_no_track_writes_what_can_hold_none(tmp_path, capsys):
    """A random model on a tiny clip with a track threshold no score reaches: the video,
    long CSV, summary and picture are written, the formats that cannot be empty are not."""
    from turtle_plugin.apis import init_model
    torch.save(dict(state_dict=init_model(TIGER_TINY).state_dict()), tmp_path / 'random.pth')
    _clip(tmp_path / 'clip.mp4', size=(64, 36))
    out = track.main([TIGER_TINY, str(tmp_path / 'random.pth'), str(tmp_path / 'clip.mp4'),
                      '--out-dir', str(tmp_path / 'out'), '--track-thr', '1.0', '--batch-size',
                      '8'])
    assert sorted(out) == ['long', 'record', 'summary', 'trajectories', 'video']
    assert 'no track in 24 frames' in capsys.readouterr().out
    assert len(pd.read_csv(out['long'])) == 0
    assert json.loads(out['record'].read_text())['drawn_ids'] == []
    assert not (tmp_path / 'out' / 'clip_dlc.csv').exists()
