"""Tracking on a synthetic video built from real frames: two tiger crops (bundled sample) walk
known paths and cross once, the first hidden behind the second for 3 frames. The network is
replaced by the known paths plus noise (3 px per coordinate), so what is checked is everything
after it: batching, ids through the crossing and the gap (``motmetrics``), One-Euro smoothing
against the truth, and the tables and files written from the tracks."""

import cv2
import numpy as np
import pandas as pd
import pytest
import sleap_io as sio
import torch
from mmengine.structures import InstanceData
from mmpose.structures import PoseDataSample
from pynwb import NWBHDF5IO

from turtle_plugin.apis import (KeypointTracker, TrackDrawer, TrackSmoother, TrackTable,
                                VideoFrames, detect_frames, init_model,
                                keypoint_likelihoods, long_dataframe, model_head,
                                plot_trajectories, read_dlc_csv, sleap_labels, summary_dataframe,
                                track_frames, track_video, write_dlc_csv, write_sleap)
from turtle_plugin.testing import crossing_paths, mot_metrics, noisy_detections
from .helpers import KPT_TINY, REPO, TIGER_TINY

SAMPLE = REPO / 'data' / 'tiger_sample' / 'train'
CROP_FRAMES = ('Frame_1', 'Frame_135')  # one tiger each
BOX = (160, 96)
NOISE = 3.0


def _tiger_crop(stem: str):
    """The labelled tiger of a bundled frame, resized to BOX, and its 12 keypoints as
    fractions of the box."""
    img = cv2.imread(str(SAMPLE / 'images' / f'{stem}.jpg'))
    row = np.loadtxt(SAMPLE / 'labels' / f'{stem}.txt', ndmin=2)[0]
    height, width = img.shape[:2]
    cx, cy, w, h = row[1:5] * [width, height, width, height]
    x1, y1 = int(cx - w / 2), int(cy - h / 2)
    crop = cv2.resize(img[y1:int(y1 + h), x1:int(x1 + w)], BOX)
    kpts = row[5:].reshape(-1, 2) * [width, height]
    return crop, (kpts - [x1, y1]) / [w, h]


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    """The known paths, their noisy detections and the video (50 frames, 640x360, 25 fps)."""
    crops, templates = zip(*[_tiger_crop(stem) for stem in CROP_FRAMES])
    paths = crossing_paths(num_frames=50, box_size=BOX, templates=templates)
    background = cv2.imread(str(SAMPLE / 'images' / 'Frame_56.jpg'))
    background = cv2.GaussianBlur(cv2.resize(background, paths.size), (0, 0), 15)
    video = tmp_path_factory.mktemp('video') / 'crossing.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), paths.fps, paths.size)
    for boxes, present in zip(paths.boxes, paths.present):
        frame = background.copy()
        for animal in np.flatnonzero(present):  # animal 1 drawn last: on top
            x1, y1 = np.round(boxes[animal, :2]).astype(int)
            frame[y1:y1 + BOX[1], x1:x1 + BOX[0]] = crops[animal]
        writer.write(frame)
    writer.release()
    return paths, noisy_detections(paths, box_sigma=NOISE, kpt_sigma=NOISE, seed=0), video


class PathDetector:
    """Stands in for the network's ``test_step``: the known detections of each frame in turn,
    as MMPose models return them (numpy, original pixels, ``keypoint_scores`` all 1 for a
    ``kpt_dim == 2`` head)."""

    def __init__(self, detections):
        self.detections, self.calls = detections, 0

    def __call__(self, data):
        samples = []
        for input_sample in data['data_samples']:
            det = self.detections[self.calls]
            self.calls += 1
            sample = PoseDataSample(metainfo=input_sample.metainfo)
            sample.pred_instances = InstanceData(
                bboxes=det['bboxes'], scores=det['scores'], labels=det['labels'],
                keypoints=det['keypoints'], keypoint_scores=np.ones(det['keypoints'].shape[:2]))
            samples.append(sample)
        return samples


@pytest.fixture(scope='module')
def tracked(scene):
    """The scene tracked as tools/track.py does (batches of 4 frames, default settings)."""
    paths, detections, video = scene
    model = init_model(TIGER_TINY)
    model.test_step = PathDetector(detections)
    frames = VideoFrames(video)
    records = [(i, t, raw) for i, _, t, raw in track_frames(
        model, frames, frames.fps, KeypointTracker(), TrackSmoother(), batch_size=4)]
    assert model.test_step.calls == 50
    return TrackTable.from_frames(records, frames.fps, 50, model.dataset_meta, frames.size), \
        records


def test_track_video_is_track_frames_collected(scene, tracked):
    """The one-call API gives the table the frame-by-frame one does (batch size 1 here)."""
    _, detections, video = scene
    model = init_model(TIGER_TINY)
    model.test_step = PathDetector(detections)
    table = track_video(model, video)
    expected, _ = tracked
    assert table.num_frames == 50 and table.fps == 25.
    for key in ('frame', 'track_id', 'score', 'bboxes', 'keypoints', 'raw_keypoints'):
        assert np.array_equal(getattr(table, key), getattr(expected, key)), key


def _animal_of_track(paths, table):
    """Track id -> the animal whose true box it overlaps most (by centre distance)."""
    truth = paths.boxes[table.frame]  # (N, 2, 4)
    dist = np.linalg.norm(truth - table.raw_bboxes[:, None], axis=-1)  # (N, 2)
    return {i: int(np.bincount(dist[table.track_id == i].argmin(1)).argmax())
            for i in table.track_ids}


def test_ids_stay_stable_through_crossing_and_gap(scene, tracked):
    paths, _, _ = scene
    table, records = tracked
    metrics = mot_metrics(paths, [r[2]['track_ids'] for r in records],
                          [r[2]['bboxes'] for r in records])
    assert metrics['num_switches'] == 0
    # 97 present animal-frames (2 x 50 - 3 hidden); at frame 0 both score below track_thr 0.7
    # (0.68 and 0.62), so both tracks start at frame 1 and are confirmed at frame 3: frames 0-2
    # missed, then all 91 found, all with the right id: IDF1 = 2 * 91 / (97 + 91)
    assert metrics['num_misses'] == 6 and metrics['num_false_positives'] == 0
    assert metrics['idf1'] == pytest.approx(2 * 91 / (97 + 91))
    assert table.track_ids == [1, 2]
    animal = _animal_of_track(paths, table)
    assert sorted(animal.values()) == [0, 1]
    hidden = np.flatnonzero(~paths.present[:, 0])
    assert hidden.tolist() == [23, 24, 25]
    track0 = [i for i, a in animal.items() if a == 0][0]
    frames0 = table.frame[table.track_id == track0]
    # the same id before and after the 3-frame gap, and no row while hidden
    assert frames0.min() < 23 and frames0.max() > 25 and not set(hidden) & set(frames0)


def _errors(paths, table, keypoints):
    """Per row, keypoint error against the truth ``(N, K, 2)``, rows sorted by (track, frame)."""
    animal = _animal_of_track(paths, table)
    order = np.lexsort((table.frame, table.track_id))
    truth = paths.keypoints[table.frame, [animal[i] for i in table.track_id]]
    return (keypoints - truth)[order], table.track_id[order]


def test_smoothing_lowers_jitter(scene, tracked):
    """Jitter = RMS frame-to-frame change of the keypoint error (the detector's noise, not the
    filter's lag, which changes slowly): the default One-Euro filter (min_cutoff 1 Hz, beta
    0.05) cuts it from 5.93 to 3.53 px (0.596x) while the total error does not grow (4.23 ->
    4.15 px; the noise alone: 3 px x sqrt(2) = 4.24 px)."""
    paths, _, _ = scene
    table, _ = tracked

    def jitter_and_rms(keypoints):
        errors, ids = _errors(paths, table, keypoints)
        steps = np.diff(errors, axis=0)[ids[1:] == ids[:-1]]
        return (np.sqrt((steps**2).sum(-1).mean()), np.sqrt((errors**2).sum(-1).mean()))

    raw_jitter, raw_rms = jitter_and_rms(table.raw_keypoints)
    jitter, rms = jitter_and_rms(table.keypoints)
    assert raw_rms == pytest.approx(NOISE * np.sqrt(2), rel=0.05)
    assert jitter / raw_jitter == pytest.approx(0.596, abs=0.02)
    assert rms < raw_rms
    # the box is smoothed too, and nothing is smoothed across tracks
    assert not np.allclose(table.bboxes, table.raw_bboxes)
    first_rows = [np.flatnonzero(table.track_id == i)[0] for i in table.track_ids]
    assert np.allclose(table.keypoints[first_rows], table.raw_keypoints[first_rows])


def test_dlc_csv_round_trips_through_pandas(tmp_path, scene, tracked):
    paths, _, _ = scene
    table, _ = tracked
    path = tmp_path / 'crossing_dlc.csv'
    write_dlc_csv(table, path, 'turtle_plugin_tiger')
    text = path.read_text().splitlines()
    assert [line.split(',')[0] for line in text[:5]] == ['scorer', 'individuals', 'bodyparts',
                                                        'coords', '0']
    assert text[4] == '0' + ',NaN' * 72  # no track in frame 0: written NaN, not left empty
    frame = read_dlc_csv(path)
    assert list(frame.columns.names) == ['scorer', 'individuals', 'bodyparts', 'coords']
    assert frame.index.tolist() == list(range(50))
    assert frame.columns.get_level_values('scorer').unique().tolist() == ['turtle_plugin_tiger']
    assert frame.columns.get_level_values('individuals').unique().tolist() == \
        ['track_1', 'track_2']
    assert frame.columns.get_level_values('bodyparts').unique().tolist() == \
        [f'kpt_{k}' for k in range(12)]
    assert frame.columns.get_level_values('coords').unique().tolist() == \
        ['x', 'y', 'likelihood']
    assert frame.shape == (50, 2 * 12 * 3)
    # DeepLabCut-style access: one individual's bodypart over time
    for row in range(len(table.frame)):
        cell = frame.loc[table.frame[row], ('turtle_plugin_tiger',
                                            f'track_{table.track_id[row]}', 'kpt_3')]
        assert cell[['x', 'y']].tolist() == pytest.approx(table.keypoints[row, 3].tolist())
        # a kpt_dim == 2 model: the likelihood is the instance score
        assert cell['likelihood'] == pytest.approx(table.score[row])
    track0 = [i for i, a in _animal_of_track(paths, table).items() if a == 0][0]
    assert frame.loc[[23, 24, 25], ('turtle_plugin_tiger', f'track_{track0}')].isna().all().all()


def test_long_csv_and_summary(tmp_path, scene, tracked):
    paths, _, _ = scene
    table, _ = tracked
    long = long_dataframe(table)
    long.to_csv(tmp_path / 'tracks.csv', index=False)
    back = pd.read_csv(tmp_path / 'tracks.csv')
    assert len(back) == len(table.frame) * 12
    assert list(back.columns[:9]) == ['frame', 'time_s', 'track_id', 'score', 'bbox_x1',
                                      'bbox_y1', 'bbox_x2', 'bbox_y2', 'keypoint']
    assert back['time_s'].tolist() == pytest.approx((back['frame'] / 25.).tolist())
    assert back.groupby(['frame', 'track_id']).size().eq(12).all()
    summary = summary_dataframe(table)
    assert summary['track_id'].tolist() == [1, 2]
    assert summary['frames'].sum() == len(table.frame)
    animal = _animal_of_track(paths, table)
    for _, row in summary.iterrows():
        centres = paths.boxes[:, animal[row.track_id]]
        centres = (centres[:, :2] + centres[:, 2:]) / 2
        true_speed = np.linalg.norm(np.diff(centres, axis=0), axis=1).mean() * 25
        # 9 px/frame along x plus the wiggle: about 230 px/s
        assert row.speed_box_px_s == pytest.approx(true_speed, rel=0.1)
        assert row['speed_kpt_0_px_s'] == pytest.approx(true_speed, rel=0.15)


def test_sleap_and_nwb_files_load_back(tmp_path, scene, tracked):
    _, _, video = scene
    table, _ = tracked
    labels = sleap_labels(table, video)
    write_sleap(table, tmp_path / 'crossing.slp', video, labels)
    back = sio.load_slp(str(tmp_path / 'crossing.slp'), open_videos=False)
    assert [t.name for t in back.tracks] == ['track_1', 'track_2']
    assert back.skeleton.node_names == [f'kpt_{k}' for k in range(12)]
    assert len(back.labeled_frames) == len(np.unique(table.frame))
    points = back.numpy()  # (frames, tracks, nodes, 2), NaN where absent
    for row in range(len(table.frame)):
        assert points[table.frame[row], table.track_id[row] - 1] == pytest.approx(
            table.keypoints[row], abs=1e-3)
    write_sleap(table, tmp_path / 'crossing.nwb', video, labels)
    # read with pynwb: sleap-io 0.9.5's NWB reader drops the tracks
    with NWBHDF5IO(str(tmp_path / 'crossing.nwb'), 'r') as io:
        module = next(iter(io.read().processing.values()))
        for track_id in table.track_ids:
            series = module[f'track=track_{track_id}'].pose_estimation_series['kpt_5']
            rows = np.flatnonzero(table.track_id == track_id)
            assert series.data[:] == pytest.approx(table.keypoints[rows, 5], abs=1e-4)
            assert series.confidence[:] == pytest.approx(table.likelihood[rows, 5])
            times = series.timestamps[:] if series.timestamps is not None else \
                series.starting_time + np.arange(len(rows)) / series.rate
            assert times == pytest.approx(table.frame[rows] / 25., abs=1e-6)
        # track 1 has no gap: stored as a rate, 25 Hz (not sleap-io's int(24.999...))
        assert module['track=track_1'].pose_estimation_series['kpt_0'].rate == 25.0
    with pytest.raises(ValueError, match='.slp or .nwb'):
        write_sleap(table, tmp_path / 'crossing.h5', video, labels)


def test_drawing_and_trajectories(tmp_path, scene, tracked):
    paths, _, video = scene
    table, records = tracked
    drawer = TrackDrawer({}, trail_frames=5)
    frames = list(VideoFrames(video))
    drawn = [drawer(frames[i], i, tracked) for i, tracked, _ in records]
    assert drawer.drawn_ids == {1, 2}
    assert all(d.shape == (360, 640, 3) for d in drawn)
    assert not np.array_equal(drawn[10], frames[10])
    png = plot_trajectories(table, tmp_path / 'traj.png', frames[0], keypoint='kpt_0')
    assert cv2.imread(str(png)).shape[1] == 800
    with pytest.raises(ValueError, match="no keypoint 'nose'"):
        plot_trajectories(table, tmp_path / 'x.png', keypoint='nose')


def test_keypoint_likelihoods_by_kpt_dim(monkeypatch, scene):
    """``K*3`` heads report their visibility score, ``K*2`` heads the instance score."""
    arrays = dict(scores=np.array([0.9, 0.4]), keypoints=np.zeros((2, 3, 2)),
                  keypoint_scores=np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]))
    assert keypoint_likelihoods(arrays, 3).tolist() == [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]
    assert keypoint_likelihoods(arrays, 2).tolist() == [[0.9] * 3, [0.4] * 3]
    _, detections, video = scene
    model = init_model(TIGER_TINY)
    model.test_step = PathDetector(detections)
    frames = list(VideoFrames(video))[:2]
    assert np.allclose(detect_frames(model, frames)[0]['keypoint_scores'],
                       detections[0]['scores'][:, None])
    monkeypatch.setattr(model_head(model), 'kpt_dim', 3)
    assert np.allclose(detect_frames(model, frames)[0]['keypoint_scores'], 1.0)


def test_tracker_keeps_ids_through_empty_frames():
    """Frames without detections keep tracks (within lost_frames), and they come back with
    their id; a track lost longer gets a new one."""
    tracker = KeypointTracker(lost_frames=5)
    det = dict(bboxes=np.array([[10., 10., 60., 50.]]), scores=np.array([0.9]),
               labels=np.array([0]), keypoints=np.zeros((1, 2, 2)),
               keypoint_scores=np.ones((1, 2)))
    empty = {key: value[:0] for key, value in det.items()}
    assert tracker.update(det)['track_ids'].tolist() == [1]
    assert [len(tracker.update(empty)['track_ids']) for _ in range(3)] == [0, 0, 0]
    assert tracker.update(det)['track_ids'].tolist() == [1]
    for _ in range(6):
        tracker.update(empty)
    ids = [tracker.update(det)['track_ids'].tolist() for _ in range(3)]
    assert ids == [[], [], [2]]  # a new track, confirmed after 3 detections


def test_unreadable_video_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        VideoFrames(tmp_path / 'missing.mp4')
    (tmp_path / 'notes.mp4').write_text('not a video')
    with pytest.raises(ValueError, match='could not read a frame of .*notes.mp4'):
        VideoFrames(tmp_path / 'notes.mp4')


def test_checkpoint_with_other_keypoints_is_refused(tmp_path):
    """A 6-keypoint turtle checkpoint given with the 12-keypoint tiger config."""
    turtle = init_model(KPT_TINY)
    path = tmp_path / 'turtle.pth'
    torch.save(dict(state_dict=turtle.state_dict()), path)
    with pytest.raises(ValueError, match=r'keypoint branch .* 36 output channels but the config '
                                         r'builds 12 keypoints x 2 values x 3 anchors = 72'):
        init_model(TIGER_TINY, str(path))
    torch.save(dict(state_dict=turtle.state_dict(),
                    meta=dict(dataset_meta=dict(turtle.dataset_meta, num_keypoints=6))), path)
    with pytest.raises(ValueError, match=r'trained on 6 keypoints \(.*\) but the config builds '
                                         r'12 keypoints .*\(kpt_0, kpt_1'):
        init_model(TIGER_TINY, str(path))
    with pytest.raises(ValueError, match='tracking needs a keypoint model'):
        next(track_frames(init_model(str(REPO / 'configs' / 'turtle_det_tiny.py')),
                          [np.zeros((64, 64, 3), np.uint8)], 25.))


def test_tiled_detection_feeds_the_tracker():
    """``tile=True`` runs windows of the training size (here 2 x 1 over a 400x200 frame) and
    merges them in frame pixels, with likelihoods; every first-frame detection above the
    tracker's thresholds starts a confirmed track."""
    model = init_model(TIGER_TINY, cfg_options={'model.test_cfg.score_thr': 0.0})
    frame = cv2.resize(cv2.imread(str(SAMPLE / 'images' / 'Frame_1.jpg')), (400, 200))
    tiled = detect_frames(model, [frame], tile=True, batch_size=2)[0]
    assert tiled['keypoints'].shape[1:] == (12, 2) and len(tiled['scores']) > 0
    assert np.allclose(tiled['keypoint_scores'], tiled['scores'][:, None])
    assert (tiled['bboxes'][:, 2] <= 400).all() and (tiled['bboxes'][:, 3] <= 200).all()
    assert KeypointTracker(track_thr=0.0, high_thr=0.0).update(tiled)['track_ids'].tolist() == \
        list(range(1, len(tiled['scores']) + 1))


def test_the_package_imports_without_pandas_and_the_tables_say_they_need_it():
    """Training and evaluation never need pandas (a machine with the OpenMMLab stack alone
    lacks it): ``import turtle_plugin`` works without it, and a track table asks for it."""
    import subprocess
    import sys
    code = ("import sys\n"
            "sys.modules['pandas'] = None  # what `import pandas` finds when it is missing\n"
            "import turtle_plugin, turtle_plugin.apis\n"
            "from turtle_plugin.apis import track_exports\n"
            "try:\n"
            "    track_exports.read_dlc_csv('tracks.csv')\n"
            "except ImportError as error:\n"
            "    print(error)\n")
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == (
        'the track tables (CSV, summaries) need pandas: pip install pandas '
        '(requirements/runtime.txt)')
