"""Track animals through a video and write what behaviour studies need: per animal and frame,
its box and keypoints, smoothed, with stable ids.

    python tools/track.py configs/tiger_kpt_tiny.py CKPT clip.mp4 --out-dir track_out
    python tools/track.py configs/turtle_kpt.py CKPT drone.mp4 --tile --device cuda --deploy

For a video ``NAME.EXT`` it writes, in ``--out-dir``:

* ``NAME_dlc.csv``: DeepLabCut's multi-animal layout (scorer / individuals / bodyparts /
  coords x, y, likelihood; one row per frame; individuals ``track_<id>``);
* ``NAME_tracks.csv``: one row per frame, track and keypoint (frame, time_s, track_id, score,
  box, keypoint, x, y, keypoint_score, and x_raw, y_raw before smoothing);
* ``NAME.slp`` (SLEAP, opens in its GUI for proofreading) and ``NAME.nwb`` (NWB
  ``ndx-pose``), through ``sleap-io``;
* ``NAME_tracked.mp4``: the video with boxes, ids, keypoints and short trails;
* ``NAME_summary.csv``: per track its frames, duration, mean score and mean speed of the box
  centre and of each keypoint in px/s; ``NAME_trajectories.png``: every track's path;
  ``NAME_summary.json``: the settings, the outputs and the ids drawn.

Keypoint likelihood: the visibility score for models with ``K*3`` keypoint channels
(``kpt_dim=3``), the instance score for ``K*2`` models.
"""
import argparse
import json
from pathlib import Path
from typing import Dict, Optional, Sequence

import cv2
from tqdm import tqdm

from turtle_plugin.apis import (KeypointTracker, TrackDrawer, TrackSmoother, TrackTable,
                                VideoFrames, init_model, long_dataframe, model_head,
                                plot_trajectories, sleap_labels, summary_dataframe, track_frames,
                                write_dlc_csv, write_sleap)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='track animals and their keypoints in a video')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('video', help='video file')
    parser.add_argument('--out-dir', default='track_out', help='where the outputs go')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda, cuda:1')
    parser.add_argument('--batch-size', type=int, default=4, help='frames per forward pass')
    parser.add_argument('--img-scale', type=int, nargs=2, metavar=('W', 'H'),
                        help="network input size instead of the config's (multiples of 32)")
    parser.add_argument('--tile', action='store_true',
                        help='tiled inference for large frames: windows of the training size')
    parser.add_argument('--tile-overlap', type=float, default=0.2)
    parser.add_argument('--deploy', action='store_true',
                        help='fuse RepConv / BatchNorm / implicit layers first (faster)')
    track = parser.add_argument_group('tracking (ByteTrack)')
    track.add_argument('--score-thr', type=float, default=0.1,
                       help='detections below this are dropped before tracking')
    track.add_argument('--high-thr', type=float, default=0.6,
                       help='detections above this are matched first; lower ones only extend '
                            'tracks')
    track.add_argument('--track-thr', type=float, default=0.7,
                       help='a detection above this may start a track')
    track.add_argument('--lost-frames', type=int, default=30,
                       help='frames a track may go undetected and keep its id')
    track.add_argument('--confirm-frames', type=int, default=3,
                       help='detections in a row that confirm a new track')
    smooth = parser.add_argument_group('smoothing (One-Euro filter)')
    smooth.add_argument('--no-smooth', action='store_true', help='keep keypoints as detected')
    smooth.add_argument('--min-cutoff', type=float, default=1.0,
                        help='cutoff in Hz at rest: lower smooths more')
    smooth.add_argument('--beta', type=float, default=0.05,
                        help='cutoff increase per px/s of speed: higher lags less')
    draw = parser.add_argument_group('drawing')
    draw.add_argument('--trail', type=int, default=25, help='frames of trail behind each track')
    draw.add_argument('--kpt-thr', type=float, default=0.3,
                      help='draw keypoints whose likelihood is at least this')
    draw.add_argument('--trajectory-keypoint', default=None,
                      help='keypoint whose path the PNG shows (default: box centre)')
    return parser.parse_args(argv)


def _outputs(out_dir: Path, stem: str) -> Dict[str, Path]:
    names = dict(dlc=f'{stem}_dlc.csv', long=f'{stem}_tracks.csv', slp=f'{stem}.slp',
                 nwb=f'{stem}.nwb', video=f'{stem}_tracked.mp4', summary=f'{stem}_summary.csv',
                 trajectories=f'{stem}_trajectories.png', record=f'{stem}_summary.json')
    return {key: out_dir / name for key, name in names.items()}


def _video_writer(path: Path, fps: float, size) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV could not write {path} (mp4v codec)')
    return writer


def run_tracking(args: argparse.Namespace, model, video: VideoFrames, out: Dict[str, Path]):
    """Detect, track, smooth and draw every frame; returns the table, the drawer and the
    first frame."""
    smoother = None if args.no_smooth else TrackSmoother(args.min_cutoff, args.beta)
    tracker = KeypointTracker(args.track_thr, args.high_thr, args.lost_frames,
                              args.confirm_frames)
    drawer = TrackDrawer(model.dataset_meta, args.trail, args.kpt_thr)
    writer = _video_writer(out['video'], video.fps, video.size)
    records, first = [], None
    stream = track_frames(model, video, video.fps, tracker, smoother, args.batch_size,
                          img_scale=args.img_scale, tile=args.tile,
                          tile_overlap=args.tile_overlap)
    try:
        for index, frame, tracked, raw in tqdm(stream, total=video.num_frames, unit='frame',
                                               desc=video.path.name):
            first = frame if first is None else first
            writer.write(drawer(frame, index, tracked))
            records.append((index, tracked, raw))
    finally:
        writer.release()
    num_frames = records[-1][0] + 1 if records else 0
    table = TrackTable.from_frames(records, video.fps, num_frames, model.dataset_meta,
                                   video.size)
    return table, drawer, first


def write_outputs(args, model, video: VideoFrames, table: TrackTable, drawer: TrackDrawer,
                  first, out: Dict[str, Path]) -> Dict[str, Path]:
    """The tables, SLEAP / NWB files, summary and trajectory picture; returns those written.

    Without any track, the DeepLabCut CSV, ``.slp`` and ``.nwb`` are not written: none of the
    three can hold zero individuals (pandas reads an empty four-row header back as data rows,
    and sleap-io refuses to write NWB without instances).
    """
    written = {key: out[key] for key in ('video', 'long', 'summary', 'trajectories', 'record')}
    long_dataframe(table).to_csv(out['long'], index=False)
    summary = summary_dataframe(table)
    summary.to_csv(out['summary'], index=False)
    plot_trajectories(table, out['trajectories'], first, args.trajectory_keypoint)
    if table.track_ids:
        write_dlc_csv(table, out['dlc'], f'turtle_plugin_{Path(args.config).stem}')
        labels = sleap_labels(table, video.path.resolve())
        write_sleap(table, out['slp'], video.path, labels)
        write_sleap(table, out['nwb'], video.path, labels)
        written.update(dlc=out['dlc'], slp=out['slp'], nwb=out['nwb'])
    else:
        print(f'no track in {table.num_frames} frames: no DeepLabCut / SLEAP / NWB file written '
              f'(lower --track-thr {args.track_thr} or --score-thr {args.score_thr}?)',
              flush=True)
    record = dict(
        video=str(video.path), fps=video.fps, frames=table.num_frames, size=list(video.size),
        config=args.config, checkpoint=args.checkpoint, keypoints=list(table.keypoint_names),
        likelihood='visibility score' if model_head(model).kpt_dim == 3 else 'instance score',
        settings={k: v for k, v in vars(args).items() if k not in ('config', 'checkpoint')},
        tracks=summary.to_dict(orient='records'), drawn_ids=sorted(drawer.drawn_ids),
        outputs={key: str(path) for key, path in written.items()})
    out['record'].write_text(json.dumps(record, indent=1, default=float))
    return written


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Path]:
    """Run the tool; returns the files written, by kind (``dlc``, ``long``, ``slp``, ``nwb``,
    ``video``, ``summary``, ``trajectories``, ``record``)."""
    args = parse_args(argv)
    video = VideoFrames(args.video)  # fails on an unreadable video before loading the model
    out = _outputs(Path(args.out_dir), video.path.stem)
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    model = init_model(args.config, args.checkpoint, device=args.device, deploy=args.deploy,
                       cfg_options={'model.test_cfg.score_thr': args.score_thr})
    table, drawer, first = run_tracking(args, model, video, out)
    written = write_outputs(args, model, video, table, drawer, first, out)
    print(f'{len(table.track_ids)} tracks over {table.num_frames} frames -> {args.out_dir}',
          flush=True)
    return written


if __name__ == '__main__':
    main()
