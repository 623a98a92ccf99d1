"""Tracking animals through a video: detect every frame (batched, any input size, or tiled for
large frames), associate the detections into tracks with stable ids, smooth each track's box and
keypoints over time with a One-Euro filter, and collect every tracked instance in one table.

Association is ByteTrack (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every
Detection Box", ECCV 2022) as MMDetection 3.3 implements it (``ByteTracker``), chosen over
``supervision``'s and BoxMOT's ByteTrack and the OC-SORT trackers by ``bench/trackers.py`` (see
``BENCHMARKS.md``). A track missed for up to ``lost_frames`` frames keeps its id when it is
found again.

Per-keypoint likelihood: a head with ``kpt_dim == 3`` predicts a visibility logit per keypoint,
and its sigmoid (``keypoint_scores``) is the likelihood; a ``kpt_dim == 2`` head predicts none,
so every keypoint of an instance gets the instance's score.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.structures import DetDataSample
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from .deploy import model_head
from .image_inference import inference
from .one_euro import OneEuroFilter
from .results import instances_to_arrays
from .tiling import inference_tiled
from .video import VideoFrames

__all__ = ['KeypointTracker', 'TrackSmoother', 'TrackTable', 'detect_frames',
           'keypoint_likelihoods', 'track_frames', 'track_video']

Arrays = Dict[str, np.ndarray]


def keypoint_likelihoods(arrays: Arrays, kpt_dim: int) -> np.ndarray:
    """Per-keypoint likelihood ``(n, K)``: the visibility score of a ``kpt_dim == 3`` head,
    else the instance score repeated for every keypoint."""
    if kpt_dim == 3:
        return arrays['keypoint_scores']
    return np.repeat(arrays['scores'][:, None], arrays['keypoints'].shape[1], axis=1)


def detect_frames(model: nn.Module,
                  frames: Sequence[np.ndarray],
                  img_scale: Optional[Sequence[int]] = None,
                  tile: bool = False,
                  tile_overlap: float = 0.2,
                  batch_size: int = 1,
                  score_thr: float = 0.) -> List[Arrays]:
    """Keypoint detections of a batch of frames, as numpy arrays.

    Args:
        model (nn.Module): a keypoint model from :func:`~turtle_plugin.apis.init_model`.
        frames (Sequence[np.ndarray]): BGR frames.
        img_scale (Sequence[int], optional): ``(w, h)`` network input size (not with ``tile``).
        tile (bool): run each frame as overlapping windows of the training size
            (:func:`~turtle_plugin.apis.inference_tiled`); ``batch_size`` windows per pass.
        tile_overlap (float): fraction of a window shared with its neighbour.
        batch_size (int): frames (or windows) per forward pass.
        score_thr (float): drop instances scoring below it.

    Returns:
        list[dict[str, np.ndarray]]: per frame ``bboxes``, ``scores``, ``labels``,
        ``keypoints`` ``(n, K, 2)`` and ``keypoint_scores`` ``(n, K)`` (likelihoods, see
        :func:`keypoint_likelihoods`), original pixels.
    """
    if tile:
        samples = [inference_tiled(model, frame, overlap=tile_overlap, batch_size=batch_size)
                   for frame in frames]
    else:
        samples = inference(model, list(frames), img_scale=img_scale, batch_size=batch_size)
    kpt_dim = model_head(model).kpt_dim
    results = []
    for sample in samples:
        arrays = instances_to_arrays(sample, score_thr)
        arrays['keypoint_scores'] = keypoint_likelihoods(arrays, kpt_dim)
        results.append(arrays)
    return results


class KeypointTracker:
    """Associates each frame's detections with tracks (MMDetection's ``ByteTracker``: Kalman
    motion, IoU matching of high- then low-scoring detections) and gives the confirmed tracks
    ids 1, 2, ... in order of confirmation.

    Detections that start a track are held back until the track is confirmed
    (``confirm_frames`` consecutive detections; tracks of the first frame are confirmed at
    once), so one-frame false positives never become tracks.

    Args:
        track_thr (float): a detection starts a track when it scores above this.
        high_thr (float): detections scoring above this are matched first; those between the
            detections' score threshold and ``high_thr`` only extend tracks that the first
            round left unmatched (ByteTrack's second association).
        lost_frames (int): frames a track may go undetected and still keep its id.
        confirm_frames (int): detections that confirm a new track.
    """

    def __init__(self, track_thr: float = 0.7, high_thr: float = 0.6, lost_frames: int = 30,
                 confirm_frames: int = 3):
        with DefaultScope.overwrite_default_scope('mmdet'):
            self._tracker = MMDET_MODELS.build(dict(
                type='ByteTracker', motion=dict(type='KalmanFilter'),
                obj_score_thrs=dict(high=high_thr, low=0.0), init_track_thr=track_thr,
                num_tentatives=confirm_frames, num_frames_retain=lost_frames))
        self._frame = 0
        self._ids: Dict[int, int] = {}

    def update(self, arrays: Arrays) -> Arrays:
        """Track the next frame's detections.

        Args:
            arrays (dict[str, np.ndarray]): the frame's detections (:func:`detect_frames`).

        Returns:
            dict[str, np.ndarray]: the detections of confirmed tracks only, the same fields
            plus ``track_ids`` ``(n,)``, sorted by track id.
        """
        bboxes = torch.as_tensor(arrays['bboxes'], dtype=torch.float32).reshape(-1, 4)
        sample = DetDataSample(metainfo=dict(frame_id=self._frame))
        sample.pred_instances = InstanceData(
            bboxes=bboxes, scores=torch.as_tensor(arrays['scores'], dtype=torch.float32),
            labels=torch.as_tensor(arrays['labels'], dtype=torch.long))
        out = self._tracker.track(sample)
        self._frame += 1
        index, ids = [], []
        for box, mmdet_id in zip(out.bboxes, out.instances_id.tolist()):
            if self._tracker.tracks[mmdet_id].tentative:
                continue
            # the tracker returns copies of the input boxes, reordered
            index.append(_row_of(bboxes, box, index))
            ids.append(self._ids.setdefault(mmdet_id, len(self._ids) + 1))
        order = np.argsort(ids, kind='stable')
        index = np.asarray(index, dtype=np.int64)[order]
        tracked = {key: value[index] for key, value in arrays.items()}
        tracked['track_ids'] = np.asarray(ids, dtype=np.int64)[order]
        return tracked


def _row_of(bboxes: torch.Tensor, box: torch.Tensor, taken: List[int]) -> int:
    """Index of the first row of ``bboxes`` equal to ``box`` and not in ``taken``."""
    for row in torch.nonzero((bboxes == box).all(1))[:, 0].tolist():
        if row not in taken:
            return row
    raise RuntimeError(f'the tracker returned a box {box.tolist()} that is not a detection')


class TrackSmoother:
    """One-Euro filter (:class:`~turtle_plugin.apis.one_euro.OneEuroFilter`) of each track's
    box and keypoints.

    Args:
        min_cutoff (float): cutoff frequency in Hz at zero speed (lower: smoother).
        beta (float): cutoff increase per px/s of speed (higher: less lag when moving fast).
        d_cutoff (float): cutoff frequency in Hz of the speed estimate.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        OneEuroFilter(min_cutoff, beta, d_cutoff)  # checks the values
        self.settings = dict(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)
        self._filters: Dict[int, OneEuroFilter] = {}

    def __call__(self, tracked: Arrays, t: float) -> Arrays:
        """Smooth one frame's tracked instances observed at time ``t`` (seconds): returns a
        copy whose ``bboxes`` and ``keypoints`` are filtered."""
        out = dict(tracked)
        bboxes, keypoints = tracked['bboxes'].copy(), tracked['keypoints'].copy()
        for i, track_id in enumerate(tracked['track_ids']):
            filt = self._filters.setdefault(int(track_id), OneEuroFilter(**self.settings))
            values = filt(np.concatenate([bboxes[i].ravel(), keypoints[i].ravel()]), t)
            bboxes[i], keypoints[i] = values[:4], values[4:].reshape(keypoints[i].shape)
        out['bboxes'], out['keypoints'] = bboxes, keypoints
        return out


def _batches(frames: Iterable[np.ndarray], size: int) -> Iterator[List[np.ndarray]]:
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def track_frames(model: nn.Module,
                 frames: Iterable[np.ndarray],
                 fps: float,
                 tracker: Optional[KeypointTracker] = None,
                 smoother: Optional[TrackSmoother] = None,
                 batch_size: int = 1,
                 **detect_kwargs) -> Iterator[Tuple[int, np.ndarray, Arrays, Arrays]]:
    """Detect, track and smooth a stream of frames, one frame at a time.

    Args:
        model (nn.Module): a keypoint model from :func:`~turtle_plugin.apis.init_model`.
        frames (Iterable[np.ndarray]): BGR frames in order (e.g. a
            :class:`~turtle_plugin.apis.VideoFrames`).
        fps (float): frame rate; frame ``i`` is at ``i / fps`` seconds.
        tracker (KeypointTracker, optional): defaults to ``KeypointTracker()``.
        smoother (TrackSmoother, optional): None leaves boxes and keypoints as detected.
        batch_size (int): frames per forward pass.
        **detect_kwargs: ``img_scale``, ``tile``, ``tile_overlap``, ``score_thr`` of
            :func:`detect_frames`.

    Yields:
        tuple: ``(frame_index, frame, tracked, raw)``: the tracked instances (smoothed when a
        smoother is given) and the same instances as detected, as :meth:`KeypointTracker.update`
        returns them.
    """
    if model_head(model).num_keypoints == 0:
        raise ValueError('tracking needs a keypoint model; this config has no keypoint branch '
                         '(num_keypoints == 0)')
    tracker = tracker if tracker is not None else KeypointTracker()
    index = 0
    for batch in _batches(frames, batch_size):
        for frame, arrays in zip(batch, detect_frames(model, batch, batch_size=batch_size,
                                                      **detect_kwargs)):
            raw = tracker.update(arrays)
            tracked = smoother(raw, index / fps) if smoother is not None else raw
            yield index, frame, tracked, raw
            index += 1


@dataclass
class TrackTable:
    """Every tracked instance of a video, one row per (frame, track).

    Attributes:
        frame (np.ndarray): ``(N,)`` frame index of each row.
        track_id (np.ndarray): ``(N,)`` track id (1, 2, ...).
        score (np.ndarray): ``(N,)`` instance score.
        bboxes (np.ndarray): ``(N, 4)`` box ``x1, y1, x2, y2`` (smoothed when smoothing is on).
        keypoints (np.ndarray): ``(N, K, 2)`` keypoints (smoothed when smoothing is on).
        likelihood (np.ndarray): ``(N, K)`` per-keypoint likelihood.
        raw_bboxes (np.ndarray): ``(N, 4)`` boxes as detected.
        raw_keypoints (np.ndarray): ``(N, K, 2)`` keypoints as detected.
        fps (float): frame rate.
        num_frames (int): frames of the video (rows exist only where something was tracked).
        keypoint_names (tuple[str, ...]): the metainfo's keypoint names.
        size (tuple[int, int]): frame ``(width, height)``.
        skeleton (list[tuple[int, int]]): keypoint index pairs (the metainfo's skeleton links).
    """
    frame: np.ndarray
    track_id: np.ndarray
    score: np.ndarray
    bboxes: np.ndarray
    keypoints: np.ndarray
    likelihood: np.ndarray
    raw_bboxes: np.ndarray
    raw_keypoints: np.ndarray
    fps: float
    num_frames: int
    keypoint_names: Tuple[str, ...]
    size: Tuple[int, int]
    skeleton: List[Tuple[int, int]] = field(default_factory=list)

    @property
    def time_s(self) -> np.ndarray:
        """``(N,)`` time of each row in seconds."""
        return self.frame / self.fps

    @property
    def track_ids(self) -> List[int]:
        """The track ids, increasing."""
        return sorted(int(i) for i in np.unique(self.track_id))

    @classmethod
    def from_frames(cls, frames: Iterable[Tuple[int, Arrays, Arrays]], fps: float,
                    num_frames: int, metainfo: dict, size: Tuple[int, int]) -> 'TrackTable':
        """Collect ``(frame_index, tracked, raw)`` records (see :func:`track_frames`).

        Args:
            frames (Iterable[tuple]): per frame its index, tracked and raw instances.
            fps (float): frame rate.
            num_frames (int): frames of the video.
            metainfo (dict): ``model.dataset_meta`` (``keypoint_id2name``,
                ``skeleton_links``, ``num_keypoints``).
            size (tuple[int, int]): frame ``(width, height)``.

        Returns:
            TrackTable: the table.
        """
        rows = [(index, tracked, raw) for index, tracked, raw in frames]
        num_keypoints = int(metainfo.get('num_keypoints') or
                            next((t['keypoints'].shape[1] for _, t, _ in rows), 0))
        id2name = metainfo.get('keypoint_id2name') or {}
        names = tuple(id2name.get(k, f'kpt_{k}') for k in range(num_keypoints))

        def stack(key, source, shape):  # source 1: tracked, 2: raw
            parts = [record[source][key] for record in rows]
            return np.concatenate(parts).astype(float) if parts else np.zeros((0, ) + shape)

        return cls(
            frame=np.concatenate([np.full(len(t['scores']), i) for i, t, _ in rows]
                                 or [np.zeros(0)]).astype(np.int64),
            track_id=stack('track_ids', 1, ()).astype(np.int64),
            score=stack('scores', 1, ()),
            bboxes=stack('bboxes', 1, (4, )),
            keypoints=stack('keypoints', 1, (num_keypoints, 2)),
            likelihood=stack('keypoint_scores', 1, (num_keypoints, )),
            raw_bboxes=stack('bboxes', 2, (4, )),
            raw_keypoints=stack('keypoints', 2, (num_keypoints, 2)),
            fps=float(fps), num_frames=int(num_frames), keypoint_names=names,
            size=tuple(int(s) for s in size),
            skeleton=[tuple(int(i) for i in link) for link in
                      metainfo.get('skeleton_links') or ()])


def track_video(model: nn.Module,
                video: Union[str, Path, VideoFrames],
                tracker: Optional[KeypointTracker] = None,
                smooth: bool = True,
                min_cutoff: float = 1.0,
                beta: float = 0.05,
                batch_size: int = 1,
                **detect_kwargs) -> TrackTable:
    """Track a whole video in one call (what ``tools/track.py`` does, minus the files).

    Args:
        model (nn.Module): a keypoint model from :func:`~turtle_plugin.apis.init_model`.
        video (str | Path | VideoFrames): the video.
        tracker (KeypointTracker, optional): defaults to ``KeypointTracker()``.
        smooth (bool): One-Euro smoothing of boxes and keypoints (:class:`TrackSmoother`).
        min_cutoff (float): the filter's cutoff in Hz at rest.
        beta (float): the filter's cutoff increase per px/s of speed.
        batch_size (int): frames per forward pass.
        **detect_kwargs: ``img_scale``, ``tile``, ``tile_overlap``, ``score_thr`` of
            :func:`detect_frames`.

    Returns:
        TrackTable: every tracked instance.
    """
    frames = video if isinstance(video, VideoFrames) else VideoFrames(video)
    smoother = TrackSmoother(min_cutoff, beta) if smooth else None
    records = [(index, tracked, raw) for index, _, tracked, raw in track_frames(
        model, frames, frames.fps, tracker, smoother, batch_size, **detect_kwargs)]
    return TrackTable.from_frames(records, frames.fps, len(records), model.dataset_meta,
                                  frames.size)
