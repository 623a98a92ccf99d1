"""Animals moving on known paths, detections of them with known noise, and the CLEAR-MOT /
identity metrics of a tracker's output against the paths (``motmetrics``, imported when used).

Used by the tracking tests and by ``bench/trackers.py``, which compares trackers on the same
scenes: :func:`crossing_paths` (two animals crossing once, one hidden behind the other for a few
frames) and :func:`herd_paths` (several animals wandering, crossing many times).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['KnownPaths', 'crossing_paths', 'herd_paths', 'noisy_detections', 'mot_metrics']

# keypoints of a default template, as fractions of the box (x, y): a ring of points
DEFAULT_TEMPLATE = np.stack([0.5 + 0.35 * np.cos(np.linspace(0, 2 * np.pi, 12, endpoint=False)),
                             0.5 + 0.35 * np.sin(np.linspace(0, 2 * np.pi, 12, endpoint=False))],
                            axis=1)


@dataclass
class KnownPaths:
    """Ground truth of a scene of ``N`` animals over ``T`` frames.

    Attributes:
        boxes (np.ndarray): ``(T, N, 4)`` true boxes ``x1, y1, x2, y2`` in pixels.
        keypoints (np.ndarray): ``(T, N, K, 2)`` true keypoints in pixels.
        present (np.ndarray): ``(T, N)`` bool, False where the animal is hidden (out of view,
            or behind another one): no ground truth there and no detection.
        fps (float): frames per second.
        size (tuple[int, int]): frame ``(width, height)``.
    """
    boxes: np.ndarray
    keypoints: np.ndarray
    present: np.ndarray
    fps: float
    size: Tuple[int, int]


def _place(centres: np.ndarray, box_sizes: np.ndarray, template: np.ndarray):
    """Boxes ``(T, N, 4)`` and keypoints ``(T, N, K, 2)`` of boxes of ``box_sizes`` ``(N, 2)``
    centred at ``centres`` ``(T, N, 2)``, keypoints at ``template`` ``(N, K, 2)`` (fractions
    of the box)."""
    half = box_sizes[None] / 2
    boxes = np.concatenate([centres - half, centres + half], axis=-1)
    keypoints = boxes[..., None, :2] + template[None] * box_sizes[None, :, None]
    return boxes, keypoints


def crossing_paths(num_frames: int = 50,
                   fps: float = 25.,
                   size: Tuple[int, int] = (640, 360),
                   box_size: Tuple[int, int] = (160, 96),
                   offset: float = 30.,
                   gap: int = 3,
                   templates: Optional[Sequence[np.ndarray]] = None) -> KnownPaths:
    """Two animals crossing once: animal 0 walks left to right, animal 1 right to left,
    ``offset`` pixels lower, both wiggling up and down (period 2 s, 10 px); they pass each
    other in the middle frame, where animal 0 is hidden behind animal 1 for ``gap`` frames.

    Args:
        num_frames (int): frames.
        fps (float): frames per second.
        size (tuple[int, int]): frame ``(width, height)``.
        box_size (tuple[int, int]): box ``(w, h)`` of both animals.
        offset (float): vertical distance between the two paths (30 px with the default box:
            IoU 0.52 when they cross).
        gap (int): frames animal 0 is hidden, centred on the crossing.
        templates (Sequence[np.ndarray], optional): per animal ``(K, 2)`` keypoints as
            fractions of its box; a ring of 12 points by default.

    Returns:
        KnownPaths: the ground truth.
    """
    width, height = size
    t = np.arange(num_frames) / fps
    progress = np.linspace(0, 1, num_frames)
    margin = box_size[0] / 2 + 10
    xs = margin + progress * (width - 2 * margin)
    wiggle = 10 * np.sin(2 * np.pi * t / 2.0)
    y0 = height / 2 - offset / 2
    centres = np.stack([np.stack([xs, y0 + wiggle], -1),
                        np.stack([xs[::-1], y0 + offset - wiggle], -1)], axis=1)
    templates = np.stack(templates if templates is not None else [DEFAULT_TEMPLATE] * 2)
    boxes, keypoints = _place(centres, np.array([box_size] * 2, float), templates)
    present = np.ones((num_frames, 2), bool)
    middle = (num_frames - 1) // 2
    present[middle - gap // 2:middle - gap // 2 + gap, 0] = False
    return KnownPaths(boxes, keypoints, present, fps, size)


def herd_paths(num_animals: int = 6,
               num_frames: int = 300,
               fps: float = 25.,
               size: Tuple[int, int] = (1280, 720),
               speed: float = 120.,
               hidden_gaps: Tuple[int, int] = (3, 8),
               seed: int = 0) -> KnownPaths:
    """Animals wandering in a box, crossing each other many times.

    Each animal's velocity is an Ornstein-Uhlenbeck process (mean speed about ``speed`` px/s,
    turning over about a second) and it bounces off the frame's borders; boxes 80-160 px wide.
    Each animal is hidden once for a random number of frames in ``hidden_gaps``.

    Args:
        num_animals (int): animals.
        num_frames (int): frames.
        fps (float): frames per second.
        size (tuple[int, int]): frame ``(width, height)``.
        speed (float): typical speed in px/s.
        hidden_gaps (tuple[int, int]): shortest and longest hidden stretch, in frames.
        seed (int): random seed.

    Returns:
        KnownPaths: the ground truth.
    """
    gen = np.random.default_rng(seed)
    box_sizes = np.stack([gen.uniform(80, 160, num_animals), gen.uniform(50, 100, num_animals)], 1)
    low, high = box_sizes / 2, np.array(size) - box_sizes / 2
    position = gen.uniform(low, high)
    velocity = gen.normal(0, speed, (num_animals, 2))
    centres, dt = [], 1 / fps
    for _ in range(num_frames):
        velocity += -velocity * dt + gen.normal(0, speed * np.sqrt(2 * dt), velocity.shape)
        position = position + velocity * dt
        bounced = (position < low) | (position > high)
        velocity[bounced] *= -1
        position = np.clip(position, low, high)
        centres.append(position.copy())
    templates = np.stack([DEFAULT_TEMPLATE] * num_animals)
    boxes, keypoints = _place(np.stack(centres), box_sizes, templates)
    present = np.ones((num_frames, num_animals), bool)
    for animal in range(num_animals):
        length = gen.integers(hidden_gaps[0], hidden_gaps[1] + 1)
        start = gen.integers(1, num_frames - length)
        present[start:start + length, animal] = False
    return KnownPaths(boxes, keypoints, present, fps, size)


def noisy_detections(paths: KnownPaths,
                     box_sigma: float = 3.,
                     kpt_sigma: float = 3.,
                     miss_rate: float = 0.,
                     false_positives: float = 0.,
                     seed: int = 0) -> List[Dict[str, np.ndarray]]:
    """A detector's output on the scene: the present animals' boxes and keypoints plus
    Gaussian noise, scores in ``[0.6, 0.95]``, a fraction ``miss_rate`` of them dropped, and on
    average ``false_positives`` spurious boxes per frame scoring ``[0.1, 0.45]``.

    Args:
        paths (KnownPaths): the ground truth.
        box_sigma (float): standard deviation of each box coordinate's noise, pixels.
        kpt_sigma (float): standard deviation of each keypoint coordinate's noise, pixels.
        miss_rate (float): probability that a present animal is not detected in a frame.
        false_positives (float): mean number of spurious detections per frame (Poisson).
        seed (int): random seed.

    Returns:
        list[dict[str, np.ndarray]]: per frame ``bboxes`` ``(n, 4)``, ``scores``, ``labels``
        (all 0), ``keypoints`` ``(n, K, 2)``, ``keypoint_scores`` ``(n, K)`` and ``gt_ids``
        (the animal's index, -1 for a spurious box), in random order.
    """
    gen = np.random.default_rng(seed)
    num_keypoints = paths.keypoints.shape[2]
    frames = []
    for boxes, keypoints, present in zip(paths.boxes, paths.keypoints, paths.present):
        ids = np.flatnonzero(present & (gen.random(len(present)) >= miss_rate))
        det_boxes = boxes[ids] + gen.normal(0, box_sigma, (len(ids), 4))
        det_kpts = keypoints[ids] + gen.normal(0, kpt_sigma, (len(ids), num_keypoints, 2))
        scores = gen.uniform(0.6, 0.95, len(ids))
        fp_boxes = _spurious_boxes(gen, gen.poisson(false_positives), paths.size)
        fp_kpts = fp_boxes[:, None, :2] + DEFAULT_TEMPLATE[None, :num_keypoints] * \
            (fp_boxes[:, None, 2:] - fp_boxes[:, None, :2])
        order = gen.permutation(len(ids) + len(fp_boxes))
        frames.append(dict(
            bboxes=np.concatenate([det_boxes, fp_boxes])[order],
            scores=np.concatenate([scores, gen.uniform(0.1, 0.45, len(fp_boxes))])[order],
            labels=np.zeros(len(order), np.int64),
            keypoints=np.concatenate([det_kpts, fp_kpts])[order],
            keypoint_scores=np.full((len(order), num_keypoints), 0.9),
            gt_ids=np.concatenate([ids, np.full(len(fp_boxes), -1)])[order]))
    return frames


def _spurious_boxes(gen: np.random.Generator, count: int, size: Tuple[int, int]) -> np.ndarray:
    """``count`` random boxes 40-120 px wide inside a ``size`` frame."""
    wh = gen.uniform(40, 120, (count, 2))
    x1y1 = gen.uniform(0, 1, (count, 2)) * (np.array(size) - wh)
    return np.concatenate([x1y1, x1y1 + wh], axis=1).reshape(-1, 4)


def mot_metrics(paths: KnownPaths, frame_ids: Sequence[np.ndarray],
                frame_boxes: Sequence[np.ndarray], min_iou: float = 0.5) -> Dict[str, float]:
    """CLEAR-MOT and identity metrics (``motmetrics``) of tracks against the known paths.

    A track box matches a present animal when their IoU is at least ``min_iou``.

    Args:
        paths (KnownPaths): the ground truth.
        frame_ids (Sequence[np.ndarray]): per frame, the track ids output.
        frame_boxes (Sequence[np.ndarray]): per frame, their boxes ``(n, 4)`` xyxy.
        min_iou (float): IoU for a match.

    Returns:
        dict[str, float]: ``idf1``, ``num_switches``, ``mota``, ``num_unique_objects``,
        ``mostly_tracked``, ``num_false_positives``, ``num_misses``.
    """
    import motmetrics as mm  # test / benchmark dependency
    acc = mm.MOTAccumulator(auto_id=True)
    for boxes, present, ids, hyp in zip(paths.boxes, paths.present, frame_ids, frame_boxes):
        gt_ids = np.flatnonzero(present)
        hyp = np.asarray(hyp, dtype=float).reshape(-1, 4)
        distances = mm.distances.iou_matrix(_xywh(boxes[gt_ids]), _xywh(hyp),
                                            max_iou=1 - min_iou)
        acc.update(gt_ids.tolist(), [int(i) for i in ids], distances)
    names = ['idf1', 'num_switches', 'mota', 'num_unique_objects', 'mostly_tracked',
             'num_false_positives', 'num_misses']
    summary = mm.metrics.create().compute(acc, metrics=names, name='scene')
    return {name: float(summary[name].iloc[0]) for name in names}


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
