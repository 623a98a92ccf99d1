"""Tracks as files a biologist opens: DeepLabCut's multi-animal CSV, a tidy long CSV, SLEAP's
``.slp`` and NWB (through ``sleap-io``), and a per-track summary.

DeepLabCut layout (what ``deeplabcut`` writes for multi-animal projects and reads with
``pd.read_csv(path, header=[0, 1, 2, 3], index_col=0)``): four header rows ``scorer``,
``individuals``, ``bodyparts``, ``coords`` (``x``, ``y``, ``likelihood``), one row per video
frame indexed 0..T-1, empty cells where an individual was not tracked. Individuals are the
tracks, ``track_<id>``.

pandas is imported when a table is made, not with the package: training and evaluation never
need it (a machine with the OpenMMLab stack alone imports ``turtle_plugin`` without it).
"""
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from .tracking import TrackTable

__all__ = ['dlc_dataframe', 'write_dlc_csv', 'read_dlc_csv', 'long_dataframe', 'summary_dataframe',
           'sleap_labels', 'write_sleap']

DLC_LEVELS = ('scorer', 'individuals', 'bodyparts', 'coords')

if TYPE_CHECKING:
    import pandas as pd


def _pandas():
    """pandas, or an ImportError that says what needs it."""
    try:
        import pandas
    except ImportError as error:
        raise ImportError('the track tables (CSV, summaries) need pandas: pip install pandas '
                          '(requirements/runtime.txt)') from error
    return pandas


def _individual(track_id: int) -> str:
    return f'track_{int(track_id)}'


def dlc_dataframe(table: TrackTable, scorer: str) -> 'pd.DataFrame':
    """The tracks in DeepLabCut's multi-animal layout.

    Args:
        table (TrackTable): the tracks.
        scorer (str): the ``scorer`` header (DeepLabCut puts its network's name there).

    Returns:
        pd.DataFrame: ``num_frames`` rows; columns a 4-level MultiIndex ``scorer /
        individuals / bodyparts / coords``, every track x keypoint x (``x``, ``y``,
        ``likelihood``); NaN where a track is absent.
    """
    pd = _pandas()
    ids, names = table.track_ids, list(table.keypoint_names)
    columns = pd.MultiIndex.from_product(
        [[scorer], [_individual(i) for i in ids], names, ['x', 'y', 'likelihood']],
        names=list(DLC_LEVELS))
    values = np.full((table.num_frames, len(ids), len(names), 3), np.nan)
    track_col = np.searchsorted(ids, table.track_id)
    values[table.frame, track_col, :, :2] = table.keypoints
    values[table.frame, track_col, :, 2] = table.likelihood
    return pd.DataFrame(values.reshape(table.num_frames, -1), columns=columns)


def long_dataframe(table: TrackTable) -> 'pd.DataFrame':
    """One row per (frame, track, keypoint), for pandas / R.

    Columns: ``frame``, ``time_s``, ``track_id``, ``score`` (instance), the box ``bbox_x1``,
    ``bbox_y1``, ``bbox_x2``, ``bbox_y2``, ``keypoint`` (name), ``x``, ``y``,
    ``keypoint_score`` (likelihood), and ``x_raw``, ``y_raw`` (as detected, before smoothing).
    """
    pd = _pandas()
    num_keypoints = len(table.keypoint_names)
    repeat = lambda values: np.repeat(values, num_keypoints, axis=0)  # noqa: E731
    boxes = repeat(table.bboxes)
    return pd.DataFrame(dict(
        frame=repeat(table.frame), time_s=repeat(table.time_s), track_id=repeat(table.track_id),
        score=repeat(table.score), bbox_x1=boxes[:, 0], bbox_y1=boxes[:, 1],
        bbox_x2=boxes[:, 2], bbox_y2=boxes[:, 3],
        keypoint=np.tile(np.array(table.keypoint_names, dtype=object), len(table.frame)),
        x=table.keypoints[..., 0].ravel(), y=table.keypoints[..., 1].ravel(),
        keypoint_score=table.likelihood.ravel(),
        x_raw=table.raw_keypoints[..., 0].ravel(), y_raw=table.raw_keypoints[..., 1].ravel()))


def _mean_speeds(frames: np.ndarray, points: np.ndarray, fps: float) -> np.ndarray:
    """Mean speed in px/s of each point ``(T, P, 2)`` between consecutive observations."""
    if len(frames) < 2:
        return np.full(points.shape[1], np.nan)
    dt = np.diff(frames) / fps
    steps = np.linalg.norm(np.diff(points, axis=0), axis=-1) / dt[:, None]
    return steps.mean(axis=0)


def summary_dataframe(table: TrackTable) -> 'pd.DataFrame':
    """One row per track: ``track_id``, ``first_frame``, ``last_frame``, ``frames`` (tracked),
    ``duration_s`` (first to last), ``mean_score``, ``speed_box_px_s`` (box centre) and
    ``speed_<keypoint>_px_s`` per keypoint (mean over consecutive tracked frames, a gap counted
    as one step over its duration)."""
    pd = _pandas()
    rows = []
    for track_id in table.track_ids:
        rows_of = np.flatnonzero(table.track_id == track_id)
        rows_of = rows_of[np.argsort(table.frame[rows_of], kind='stable')]
        frames = table.frame[rows_of]
        centres = (table.bboxes[rows_of, :2] + table.bboxes[rows_of, 2:]) / 2
        points = np.concatenate([centres[:, None], table.keypoints[rows_of]], axis=1)
        speeds = _mean_speeds(frames, points, table.fps)
        row = dict(track_id=track_id, first_frame=int(frames[0]), last_frame=int(frames[-1]),
                   frames=len(frames), duration_s=(frames[-1] - frames[0]) / table.fps,
                   mean_score=float(table.score[rows_of].mean()),
                   speed_box_px_s=speeds[0])
        row.update({f'speed_{name}_px_s': speed
                    for name, speed in zip(table.keypoint_names, speeds[1:])})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ['track_id'])


def sleap_labels(table: TrackTable, video: Union[str, Path]):
    """The tracks as a ``sleap_io.Labels``: one ``PredictedInstance`` per row with its track,
    instance score and per-keypoint scores (likelihoods), the metainfo's skeleton, and the video
    referenced by path (not embedded)."""
    import sleap_io as sio  # imported here: only the SLEAP / NWB export needs it

    skeleton = sio.Skeleton(nodes=list(table.keypoint_names),
                            edges=[(table.keypoint_names[a], table.keypoint_names[b])
                                   for a, b in table.skeleton],
                            name='turtle_plugin')
    video_obj = sio.Video(filename=str(video), open_backend=False)
    tracks = {i: sio.Track(name=_individual(i)) for i in table.track_ids}
    frames = []
    for frame in np.unique(table.frame):
        instances = [sio.PredictedInstance.from_numpy(
            points_data=table.keypoints[row], skeleton=skeleton,
            point_scores=table.likelihood[row], score=float(table.score[row]),
            track=tracks[int(table.track_id[row])])
            for row in np.flatnonzero(table.frame == frame)]
        frames.append(sio.LabeledFrame(video=video_obj, frame_idx=int(frame),
                                       instances=instances))
    return sio.Labels(labeled_frames=frames, videos=[video_obj], skeletons=[skeleton],
                      tracks=list(tracks.values()))


def write_sleap(table: TrackTable, path: Union[str, Path], video: Union[str, Path],
                labels=None) -> Path:
    """Write the tracks as SLEAP ``.slp`` or NWB ``.nwb`` (by the suffix of ``path``).

    Args:
        table (TrackTable): the tracks.
        path (str | Path): ``*.slp`` or ``*.nwb``.
        video (str | Path): the video the tracks belong to (referenced, not embedded).
        labels (sleap_io.Labels, optional): :func:`sleap_labels` of the table, if already made.

    Returns:
        Path: ``path``.
    """
    import sleap_io as sio
    from sleap_io.io.nwb_predictions import write_nwb
    path = Path(path)
    if path.suffix not in ('.slp', '.nwb'):
        raise ValueError(f'{path}: SLEAP output must end in .slp or .nwb')
    labels = labels if labels is not None else sleap_labels(table, video)
    if path.suffix == '.slp':
        sio.save_slp(labels, str(path), verbose=False)
    else:
        # Every frame's timestamp in seconds: sleap-io 0.9.5's save_nwb makes one per
        # *labelled* frame and indexes them by frame number (fails when a frame has no track).
        # Shrunk by 1e-9: for a track without gaps it stores rate = int(1 / step), and
        # 1 / (k / 25 - (k - 1) / 25) is 24.99999... in floating point, which would store 24 Hz.
        write_nwb(labels, str(path), pose_estimation_metadata=dict(
            video_timestamps=np.arange(table.num_frames) / table.fps * (1 - 1e-9)))
    return path


def write_dlc_csv(table: TrackTable, path: Union[str, Path], scorer: str) -> Path:
    """Write :func:`dlc_dataframe` as DeepLabCut's CSV.

    Missing values are written ``NaN``, not left empty: pandas reads a data row whose cells
    are all empty right under a multi-row header as the index's name row, so a video whose first
    frame has no track would lose that frame.
    """
    dlc_dataframe(table, scorer).to_csv(path, na_rep='NaN')
    return Path(path)


def read_dlc_csv(path: Union[str, Path]) -> 'pd.DataFrame':
    """Read a DeepLabCut CSV as DeepLabCut does (four header rows, frame index)."""
    return _pandas().read_csv(path, header=[0, 1, 2, 3], index_col=0)

