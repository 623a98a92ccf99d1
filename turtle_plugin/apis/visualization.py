"""Draw predicted boxes, keypoints and the skeleton on an image with OpenCV.

Colours come from the dataset metainfo as MMPose parses it (``keypoint_colors`` and
``skeleton_link_colors``, RGB) and MMDetection's ``palette`` (RGB) for boxes; classes without
one cycle through a small fixed palette.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.structures import BaseDataElement

from .results import instances_to_arrays

__all__ = ['draw_predictions', 'draw_pose']

# RGB, for classes the metainfo gives no colour
DEFAULT_PALETTE = ((0, 255, 0), (255, 128, 0), (51, 153, 255), (255, 51, 255), (255, 255, 0))


def _bgr(rgb: Sequence[int]) -> Tuple[int, int, int]:
    red, green, blue = (int(c) for c in rgb)
    return blue, green, red


def _colour(colours: Optional[Sequence], index: int, fallback: Sequence[int]) -> Tuple[int, ...]:
    if colours is not None and index < len(colours):
        return _bgr(colours[index])
    return _bgr(fallback)


def draw_predictions(img: np.ndarray,
                     sample: BaseDataElement,
                     metainfo: Optional[dict] = None,
                     score_thr: float = 0.3,
                     kpt_score_thr: float = 0.3,
                     thickness: int = 2) -> np.ndarray:
    """A copy of ``img`` with the sample's predictions drawn on it.

    Args:
        img (np.ndarray): the original BGR image the predictions refer to.
        sample (DetDataSample | PoseDataSample): a result of
            :func:`~turtle_plugin.apis.inference`.
        metainfo (dict, optional): ``model.dataset_meta``: ``classes``, ``palette``,
            ``keypoint_colors``, ``skeleton_links``, ``skeleton_link_colors``.
        score_thr (float): draw instances with ``score >= score_thr``.
        kpt_score_thr (float): draw keypoints (and links between them) with a keypoint score
            ``>= kpt_score_thr``.
        thickness (int): line thickness in pixels; keypoint radius is ``thickness + 1``.

    Returns:
        np.ndarray: the drawn BGR image.
    """
    metainfo = metainfo or {}
    canvas = img.copy()
    arrays = instances_to_arrays(sample, score_thr)
    classes = metainfo.get('classes') or ()
    for i, (box, score, label) in enumerate(zip(arrays['bboxes'], arrays['scores'],
                                                arrays['labels'])):
        label = int(label)
        colour = _colour(metainfo.get('palette'), label,
                         DEFAULT_PALETTE[label % len(DEFAULT_PALETTE)])
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        name = classes[label] if label < len(classes) else str(label)
        cv2.putText(canvas, f'{name} {score:.2f}', (x1, max(y1 - 4, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
        if 'keypoints' in arrays:
            draw_pose(canvas, arrays['keypoints'][i], arrays['keypoint_scores'][i], metainfo,
                       kpt_score_thr, thickness)
    return canvas


def draw_pose(canvas: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, metainfo: dict,
              kpt_score_thr: float, thickness: int) -> None:
    """Draw one instance's skeleton links, then its keypoints on top, in place.

    Args:
        canvas (np.ndarray): BGR image drawn on.
        keypoints (np.ndarray): ``(K, 2)`` keypoints in pixels.
        scores (np.ndarray): ``(K,)`` keypoint scores.
        metainfo (dict): ``skeleton_links``, ``skeleton_link_colors``, ``keypoint_colors``.
        kpt_score_thr (float): draw keypoints (and links between them) scoring at least this.
        thickness (int): line thickness; keypoint radius is ``thickness + 1``.
    """
    visible = scores >= kpt_score_thr
    points = [(int(round(float(x))), int(round(float(y)))) for x, y in keypoints]
    link_colours = metainfo.get('skeleton_link_colors')
    for j, (a, b) in enumerate(metainfo.get('skeleton_links') or ()):
        if a < len(points) and b < len(points) and visible[a] and visible[b]:
            cv2.line(canvas, points[a], points[b],
                     _colour(link_colours, j, DEFAULT_PALETTE[0]), thickness, cv2.LINE_AA)
    kpt_colours = metainfo.get('keypoint_colors')
    for k, point in enumerate(points):
        if visible[k]:
            cv2.circle(canvas, point, thickness + 1,
                       _colour(kpt_colours, k, DEFAULT_PALETTE[1]), -1, cv2.LINE_AA)
