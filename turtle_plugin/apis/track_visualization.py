"""Drawing tracks: boxes, ids, keypoints and short trails on video frames (OpenCV), and a
picture of every track's trajectory (Matplotlib).

A track keeps one colour everywhere (frames, trails, trajectory plot): hues spaced by the golden
angle from its id, so consecutive ids differ clearly.
"""
import colorsys
from collections import deque
from pathlib import Path
from typing import Deque, Dict, Optional, Tuple, Union

import cv2
import numpy as np

from .tracking import Arrays, TrackTable
from .visualization import draw_pose

__all__ = ['track_colour', 'TrackDrawer', 'plot_trajectories']


def track_colour(track_id: int) -> Tuple[int, int, int]:
    """RGB colour of a track (0-255)."""
    hue = (int(track_id) * 0.618033988749895) % 1.0
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.85, 1.0))


class TrackDrawer:
    """Draws each frame's tracks with a trail of their box centres over the last frames.

    Args:
        metainfo (dict): ``model.dataset_meta`` (skeleton and keypoint colours).
        trail_frames (int): frames of trail drawn behind each track; 0 draws none.
        kpt_thr (float): draw keypoints whose likelihood is at least this.
        thickness (int): line thickness in pixels.
    """

    def __init__(self, metainfo: dict, trail_frames: int = 25, kpt_thr: float = 0.3,
                 thickness: int = 2):
        self.metainfo = metainfo
        self.trail_frames = trail_frames
        self.kpt_thr = kpt_thr
        self.thickness = thickness
        self._trails: Dict[int, Deque[Tuple[int, Tuple[int, int]]]] = {}
        self.drawn_ids = set()

    def __call__(self, frame: np.ndarray, index: int, tracked: Arrays) -> np.ndarray:
        """A copy of ``frame`` (number ``index``) with ``tracked`` drawn on it
        (:func:`~turtle_plugin.apis.track_frames`' instances)."""
        canvas = frame.copy()
        for box, kpts, scores, track_id in zip(tracked['bboxes'], tracked['keypoints'],
                                               tracked['keypoint_scores'], tracked['track_ids']):
            track_id = int(track_id)
            red, green, blue = track_colour(track_id)
            colour = (blue, green, red)
            x1, y1, x2, y2 = (int(round(float(v))) for v in box)
            self._trail(track_id, index, ((x1 + x2) // 2, (y1 + y2) // 2))
            self._draw_trail(canvas, track_id, index, colour)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, self.thickness)
            cv2.putText(canvas, f'id {track_id}', (x1, max(y1 - 5, 12)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2, cv2.LINE_AA)
            draw_pose(canvas, kpts, scores, self.metainfo, self.kpt_thr, self.thickness)
            self.drawn_ids.add(track_id)
        return canvas

    def _trail(self, track_id: int, index: int, centre: Tuple[int, int]) -> None:
        trail = self._trails.setdefault(track_id, deque())
        trail.append((index, centre))
        while trail and trail[0][0] <= index - max(self.trail_frames, 1):
            trail.popleft()

    def _draw_trail(self, canvas: np.ndarray, track_id: int, index: int,
                    colour: Tuple[int, int, int]) -> None:
        if self.trail_frames <= 0:
            return
        points = np.array([p for _, p in self._trails[track_id]], dtype=np.int32)
        if len(points) > 1:
            cv2.polylines(canvas, [points.reshape(-1, 1, 2)], False, colour, self.thickness,
                          cv2.LINE_AA)


def plot_trajectories(table: TrackTable,
                      path: Union[str, Path],
                      background: Optional[np.ndarray] = None,
                      keypoint: Optional[str] = None,
                      dpi: int = 100) -> Path:
    """Save a picture of every track's path over the video frame.

    Args:
        table (TrackTable): the tracks.
        path (str | Path): the image file (``.png``).
        background (np.ndarray, optional): a BGR frame drawn faded under the paths.
        keypoint (str, optional): follow this keypoint; the box centre by default.
        dpi (int): resolution; the figure is 8 inches wide.

    Returns:
        Path: ``path``.
    """
    import matplotlib
    matplotlib.use('Agg')  # files only, no display needed
    import matplotlib.pyplot as plt

    width, height = table.size
    fig, ax = plt.subplots(figsize=(8, 8 * height / width), dpi=dpi)
    if background is not None:
        ax.imshow(background[..., ::-1], alpha=0.45)
    for track_id in table.track_ids:
        rows = np.flatnonzero(table.track_id == track_id)
        rows = rows[np.argsort(table.frame[rows], kind='stable')]
        points = _track_points(table, rows, keypoint)
        colour = np.array(track_colour(track_id)) / 255
        ax.plot(points[:, 0], points[:, 1], '-', color=colour, lw=2, label=f'id {track_id}')
        ax.plot(*points[0], 'o', color=colour, ms=6)
        ax.plot(*points[-1], '>', color=colour, ms=7)
    ax.set(xlim=(0, width), ylim=(height, 0), xlabel='x (px)', ylabel='y (px)',
           title=f'{len(table.track_ids)} tracks, {keypoint or "box centre"} '
                 f'(o start, > end)')
    if table.track_ids:
        ax.legend(loc='upper right', fontsize=8, ncol=max(1, len(table.track_ids) // 8))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _track_points(table: TrackTable, rows: np.ndarray, keypoint: Optional[str]) -> np.ndarray:
    if keypoint is None:
        return (table.bboxes[rows, :2] + table.bboxes[rows, 2:]) / 2
    if keypoint not in table.keypoint_names:
        raise ValueError(f'no keypoint {keypoint!r}; the model has {list(table.keypoint_names)}')
    return table.keypoints[rows, table.keypoint_names.index(keypoint)]
