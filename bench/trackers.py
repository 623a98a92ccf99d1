"""Which multi-object tracker associates turtle_plugin's detections into tracks best: identity
metrics (``motmetrics``) and time per frame of the candidates on scenes with known paths.

Candidates (each one's own defaults, the same lost-track buffer; every one maps its output back
to the input detections, so keypoints travel with their box):

* ``supervision_bytetrack``: ``supervision.ByteTrack`` (0.30.x; deprecated there since 0.28 and
  removed in 0.31 in favour of Roboflow's ``trackers`` package, which needs numpy>=2). Its
  output is mapped back to the detections by IoU >= 0.5 with the Kalman-updated track boxes.
* ``mmdet_bytetrack`` / ``mmdet_ocsort``: MMDetection 3.3's ``ByteTracker`` /
  ``OCSORTTracker`` with its ``KalmanFilter`` (needs ``lap``); output boxes are copies of
  the input boxes, mapped back by equality.
* ``boxmot_bytetrack`` / ``boxmot_ocsort``: BoxMOT's ``ByteTrack`` / ``OcSort`` (19.0.0 is
  the last release installable with numpy<2); they return each track's detection index.
* ``turtle_plugin_tracker``: what ``tools/track.py`` runs,
  :class:`turtle_plugin.apis.KeypointTracker` (MMDetection's ``ByteTracker``, output limited to
  confirmed tracks).

Scenes (``turtle_plugin.testing``): ``crossing`` (two animals cross once, one hidden 3 frames
behind the other: the tracking test's scene), ``herd`` (6 animals wandering 300 frames, 5 %
missed detections, 0.5 false positives per frame, each animal hidden once for 3-8 frames),
``fast`` (the herd at 3x the speed: boxes move up to about half their width per frame), over
``--seeds``. Example (BoxMOT installed outside the environment, without its dependencies)::

    pip install --no-deps --target /tmp/boxmot boxmot==19.0.0
    PYTHONPATH=/tmp/boxmot python bench/trackers.py --out bench_results/trackers.json
"""
import argparse
import time
from typing import Callable, Dict, List

import numpy as np

from _common import (machine_info, median, print_table, result_payload, utc_now, write_json)
from turtle_plugin.testing import (crossing_paths, herd_paths, mot_metrics, noisy_detections)

SCENES = {
    'crossing': lambda seed: (crossing_paths(), dict(seed=seed)),
    'herd': lambda seed: (herd_paths(seed=seed),
                          dict(miss_rate=0.05, false_positives=0.5, seed=seed)),
    'fast': lambda seed: (herd_paths(speed=360., seed=seed),
                          dict(miss_rate=0.05, false_positives=0.5, seed=seed)),
}
Update = Callable[[Dict[str, np.ndarray], int], np.ndarray]  # detections, frame -> ids


def supervision_bytetrack(fps: float, buffer: int) -> Update:
    import supervision as sv
    tracker = sv.ByteTrack(lost_track_buffer=buffer, frame_rate=fps)

    def update(det, frame):
        n = len(det['scores'])
        out = tracker.update_with_detections(sv.Detections(
            xyxy=det['bboxes'].reshape(-1, 4).astype(np.float32), confidence=det['scores'],
            class_id=det['labels'], data=dict(index=np.arange(n))))
        ids = np.full(n, -1)
        ids[out.data['index']] = out.tracker_id
        return ids
    return update


def _mmdet_tracker(cfg: dict) -> Update:
    import torch
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.registry import DefaultScope
    from mmengine.structures import InstanceData
    with DefaultScope.overwrite_default_scope('mmdet'):
        tracker = MODELS.build(cfg)

    def update(det, frame):
        sample = DetDataSample(metainfo=dict(frame_id=frame))
        bboxes = torch.as_tensor(det['bboxes'], dtype=torch.float32).reshape(-1, 4)
        sample.pred_instances = InstanceData(
            bboxes=bboxes, scores=torch.as_tensor(det['scores'], dtype=torch.float32),
            labels=torch.as_tensor(det['labels']))
        out = tracker.track(sample)
        ids = np.full(len(bboxes), -1)
        for box, track_id in zip(out.bboxes, out.instances_id):
            ids[int(torch.nonzero((bboxes == box).all(1))[0, 0])] = int(track_id)
        return ids
    return update


def mmdet_bytetrack(fps: float, buffer: int) -> Update:
    return _mmdet_tracker(dict(type='ByteTracker', motion=dict(type='KalmanFilter'),
                               num_frames_retain=buffer))


def mmdet_ocsort(fps: float, buffer: int) -> Update:
    return _mmdet_tracker(dict(type='OCSORTTracker', motion=dict(type='KalmanFilter'),
                               num_frames_retain=buffer))


def turtle_plugin_tracker(fps: float, buffer: int) -> Update:
    """What tools/track.py runs: MMDetection's ByteTracker, confirmed tracks only."""
    from turtle_plugin.apis import KeypointTracker
    tracker = KeypointTracker(lost_frames=buffer)

    def update(det, frame):
        det = dict(det, index=np.arange(len(det['scores'])))
        out = tracker.update(det)
        ids = np.full(len(det['scores']), -1)
        ids[out['index']] = out['track_ids']
        return ids
    return update


def _boxmot_tracker(tracker) -> Update:
    blank = np.zeros((720, 1280, 3), np.uint8)

    def update(det, frame):
        n = len(det['scores'])
        dets = np.concatenate([det['bboxes'].reshape(-1, 4), det['scores'][:, None],
                               det['labels'][:, None]], axis=1).astype(np.float32)
        out = tracker.update(dets, blank)
        ids = np.full(n, -1)
        for row in np.asarray(out).reshape(-1, 8):
            ids[int(row[7])] = int(row[4])
        return ids
    return update


def boxmot_bytetrack(fps: float, buffer: int) -> Update:
    from boxmot.trackers.bytetrack.bytetrack import ByteTrack
    return _boxmot_tracker(ByteTrack(track_buffer=buffer, frame_rate=int(round(fps))))


def boxmot_ocsort(fps: float, buffer: int) -> Update:
    from boxmot.trackers.ocsort.ocsort import OcSort
    return _boxmot_tracker(OcSort(max_age=buffer))


CANDIDATES = {f.__name__: f for f in (supervision_bytetrack, mmdet_bytetrack, mmdet_ocsort,
                                      boxmot_bytetrack, boxmot_ocsort, turtle_plugin_tracker)}


def run_case(name: str, scene: str, seed: int, buffer: int) -> dict:
    """One tracker on one scene: its metrics and time per frame."""
    paths, noise = SCENES[scene](seed)
    frames = noisy_detections(paths, **noise)
    update = CANDIDATES[name](paths.fps, buffer)
    ids, boxes, seconds = [], [], []
    for index, det in enumerate(frames):
        start = time.perf_counter()
        frame_ids = update(det, index)
        seconds.append(time.perf_counter() - start)
        ids.append(frame_ids[frame_ids >= 0])
        boxes.append(det['bboxes'][frame_ids >= 0])
    metrics = mot_metrics(paths, ids, boxes)
    return dict(tracker=name, scene=scene, seed=seed, ms_per_frame=1e3 * median(seconds),
                **metrics)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--trackers', nargs='+', default=list(CANDIDATES), choices=CANDIDATES)
    parser.add_argument('--scenes', nargs='+', default=list(SCENES), choices=SCENES)
    parser.add_argument('--seeds', type=int, default=3, help='seeds per scene')
    parser.add_argument('--buffer', type=int, default=30, help='lost-track buffer, frames')
    parser.add_argument('--out', default='bench_results/trackers.json')
    return parser.parse_args()


def main():
    args = parse_args()
    started, results, skipped = utc_now(), [], {}
    for name in args.trackers:
        for scene in args.scenes:
            for seed in range(args.seeds):
                try:
                    results.append(run_case(name, scene, seed, args.buffer))
                except ImportError as error:  # candidate not installed
                    skipped[name] = str(error)
                    break
            if name in skipped:
                break
    rows: List[list] = []
    for name in args.trackers:
        for scene in args.scenes:
            runs = [r for r in results if r['tracker'] == name and r['scene'] == scene]
            if runs:
                rows.append([name, scene, float(np.mean([r['idf1'] for r in runs])),
                             int(sum(r['num_switches'] for r in runs)),
                             float(np.mean([r['mota'] for r in runs])),
                             median([r['ms_per_frame'] for r in runs])])
    print_table(['tracker', 'scene', 'IDF1 (mean)', 'ID switches (sum)', 'MOTA (mean)',
                 'ms/frame'], rows, title=f'{args.seeds} seeds per scene')
    for name, error in skipped.items():
        print(f'skipped {name}: {error}')
    packages = ('numpy', 'supervision', 'mmdet', 'boxmot', 'lap', 'motmetrics')
    out = write_json(args.out, result_payload(
        'trackers', started, machine_info(packages), vars(args), results=results,
        skipped=skipped))
    print(f'written {out}')


if __name__ == '__main__':
    main()
