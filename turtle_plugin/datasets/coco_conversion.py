"""Conversion between YOLO keypoint label rows and COCO keypoint annotations.

One code path serves ``YOLOKptDataset`` (its data infos and ground-truth json are built from the
COCO annotations made here) and the ``tools/dataset_converters`` CLIs, so the dataset, the
converted json and the evaluation agree exactly.

COCO side: ``bbox = [x, y, w, h]`` in pixels, ``keypoints = [x, y, v] * K`` in pixels with COCO's
``v`` (0 unlabelled, 1 labelled but hidden, 2 visible), ``category_id = cls + 1``,
``area = area_ratio * w * h`` (YOLO labels carry no segmentation; 0.53 is the mask/box ratio
MMPose and Ultralytics use for box-only keypoint data).
"""
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .yolo_format import YOLOLabelError

__all__ = [
    'AREA_RATIO', 'yolo_rows_to_coco_annotations', 'coco_annotations_to_yolo_rows',
    'format_label_rows', 'coco_categories', 'records_to_coco', 'validate_coco_keypoints',
    'choose_kpt_dim'
]

AREA_RATIO = 0.53
_DECIMALS = 6  # pixel coordinates in json: 1e-6 px is far below label precision


def yolo_rows_to_coco_annotations(rows: np.ndarray, width: int, height: int, image_id: int,
                                  first_ann_id: int,
                                  area_ratio: float = AREA_RATIO) -> List[Dict]:
    """COCO annotations of the parsed label rows of one image.

    Args:
        rows (np.ndarray): ``(N, 5 + 3K)`` rows from ``parse_label_file``.
        width (int): image width in pixels.
        height (int): image height in pixels.
        image_id (int): COCO image id.
        first_ann_id (int): id of the first annotation; the others follow.
        area_ratio (float): ``area = area_ratio * box width * box height``.

    Returns:
        list[dict]: one COCO annotation per row.
    """
    anns = []
    for i, row in enumerate(np.asarray(rows, dtype=np.float64)):
        bw, bh = row[3] * width, row[4] * height
        x, y = row[1] * width - bw / 2, row[2] * height - bh / 2
        kpts = row[5:].reshape(-1, 3)
        keypoints = []
        for kx, ky, v in kpts:
            keypoints += [round(kx * width, _DECIMALS), round(ky * height, _DECIMALS), int(v)]
        anns.append(
            dict(
                id=first_ann_id + i,
                image_id=image_id,
                category_id=int(row[0]) + 1,
                bbox=[round(float(v), _DECIMALS) for v in (x, y, bw, bh)],
                area=round(float(area_ratio * bw * bh), _DECIMALS),
                iscrowd=0,
                num_keypoints=int((kpts[:, 2] > 0).sum()),
                keypoints=keypoints))
    return anns


def validate_coco_keypoints(anns: Sequence[Dict], num_keypoints: int, source: str = '') -> None:
    """Check every annotation has ``3 * num_keypoints`` keypoint values.

    Raises:
        YOLOLabelError: naming the source, the annotation's position and id.
    """
    for index, ann in enumerate(anns):
        kpts = ann.get('keypoints')
        if kpts is None and num_keypoints == 0:
            continue
        if kpts is None or len(kpts) != 3 * num_keypoints:
            got = 'no keypoints' if kpts is None else f'{len(kpts)} keypoint values'
            raise YOLOLabelError(f'{source}: annotation #{index} (id {ann.get("id")}) has {got}, '
                                 f'expected {3 * num_keypoints} ({num_keypoints} keypoints x 3)')


def coco_annotations_to_yolo_rows(anns: Sequence[Dict], width: int, height: int,
                                  cat_to_cls: Dict[int, int], num_keypoints: int,
                                  source: str = '') -> np.ndarray:
    """YOLO rows ``cls cx cy w h`` + K * ``(x, y, v)`` (normalised) of one image's annotations.

    Args:
        anns (Sequence[dict]): COCO annotations of the image.
        width (int): image width.
        height (int): image height.
        cat_to_cls (dict[int, int]): COCO category id to 0-based class index.
        num_keypoints (int): K.
        source (str): name for error messages.

    Returns:
        np.ndarray: ``(N, 5 + 3K)`` float64 rows.
    """
    validate_coco_keypoints(anns, num_keypoints, source)
    rows = []
    for ann in anns:
        if ann['category_id'] not in cat_to_cls:
            raise YOLOLabelError(f'{source}: annotation id {ann.get("id")} has category_id '
                                 f'{ann["category_id"]}, not among the categories')
        x, y, w, h = (float(v) for v in ann['bbox'])
        kpts = np.asarray(ann.get('keypoints', []), dtype=np.float64).reshape(-1, 3)
        kpts = kpts / [width, height, 1.]
        rows.append(np.concatenate([[cat_to_cls[ann['category_id']], (x + w / 2) / width,
                                     (y + h / 2) / height, w / width, h / height],
                                    kpts.ravel()]))
    return np.array(rows, dtype=np.float64).reshape(-1, 5 + 3 * num_keypoints)


def choose_kpt_dim(rows: np.ndarray) -> int:
    """3 if any keypoint needs the visibility column (hidden, or unlabelled but placed), else 2.

    With 2 columns a keypoint is labelled exactly when it is not at ``(0, 0)``.
    """
    kpts = np.asarray(rows).reshape(len(rows), -1)[:, 5:].reshape(-1, 3)
    at_origin = (kpts[:, 0] == 0) & (kpts[:, 1] == 0)
    needs_v = (kpts[:, 2] == 1) | ((kpts[:, 2] == 0) & ~at_origin)
    return 3 if needs_v.any() else 2


def _fmt(value: float) -> str:
    text = f'{value:.12g}'
    return '0' if text == '-0' else text


def format_label_rows(rows: np.ndarray, kpt_dim: int) -> str:
    """Text of a YOLO label file (12 significant digits; ``v`` dropped when ``kpt_dim == 2``)."""
    lines = []
    for row in np.asarray(rows, dtype=np.float64):
        kpts = row[5:].reshape(-1, 3)
        values = [str(int(row[0]))] + [_fmt(v) for v in row[1:5]]
        for x, y, v in kpts:
            values += [_fmt(x), _fmt(y)] + ([str(int(v))] if kpt_dim == 3 else [])
        lines.append(' '.join(values))
    return ''.join(line + '\n' for line in lines)


def coco_categories(names: Sequence[str], keypoint_names: Optional[Sequence[str]] = None,
                    skeleton: Optional[Sequence[Tuple[int, int]]] = None) -> List[Dict]:
    """COCO ``categories`` (ids from 1); ``skeleton`` takes 0-based links, written 1-based."""
    cats = []
    for i, name in enumerate(names):
        cat = dict(id=i + 1, name=str(name), supercategory=str(name))
        if keypoint_names is not None:
            cat['keypoints'] = [str(k) for k in keypoint_names]
            cat['skeleton'] = [[int(a) + 1, int(b) + 1] for a, b in (skeleton or [])]
        cats.append(cat)
    return cats


def _relative_name(path: str, root: Path) -> str:
    """``path`` relative to ``root`` (absolute when outside it), posix style."""
    path, root = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    return (path.relative_to(root) if path.is_relative_to(root) else path).as_posix()


def records_to_coco(records: Sequence[Dict], names: Sequence[str], img_root: Path,
                    keypoint_names: Optional[Sequence[str]] = None,
                    skeleton: Optional[Sequence[Tuple[int, int]]] = None,
                    area_ratio: float = AREA_RATIO) -> Dict:
    """COCO keypoint json of scanned YOLO images (see ``scan_labels``).

    Image ids are the images' positions in the listed split plus 1; annotation ids count from 1
    in image order. ``file_name`` is relative to ``img_root``.

    Args:
        records (Sequence[dict]): scanned images with ``img_path``, ``width``, ``height``,
            ``rows``, ``index``.
        names (Sequence[str]): class names.
        img_root (Path): folder ``file_name`` is relative to.
        keypoint_names (Sequence[str], optional): for the categories.
        skeleton (Sequence[tuple[int, int]], optional): 0-based links for the categories.
        area_ratio (float): see :func:`yolo_rows_to_coco_annotations`.

    Returns:
        dict: ``images``, ``annotations``, ``categories``.
    """
    images, annotations = [], []
    for rec in records:
        image_id = rec['index'] + 1
        images.append(dict(id=image_id, file_name=_relative_name(rec['img_path'], img_root),
                           width=rec['width'], height=rec['height']))
        annotations += yolo_rows_to_coco_annotations(rec['rows'], rec['width'], rec['height'],
                                                     image_id, len(annotations) + 1, area_ratio)
    return dict(images=images, annotations=annotations,
                categories=coco_categories(names, keypoint_names, skeleton))
