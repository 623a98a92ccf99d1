"""Convert a YOLO keypoint split to a COCO keypoint json (loads in pycocotools / CocoMetric).

    python tools/dataset_converters/yolo2coco.py data/tiger_sample/tiger.yaml --split val \
        --metainfo configs/_base_/datasets/tiger.py --out work_dirs/tiger_val.json
    python tools/dataset_converters/yolo2coco.py --img-dir imgs/ --label-dir labels/ \
        --num-keypoints 6 --names turtle --out turtle.json

Boxes become ``[x, y, w, h]`` pixels, keypoints ``[x, y, v] * K`` pixels (``v = 2`` for labelled
keypoints of ``x y`` labels, ``0`` for ``(0, 0)``), ``category_id = cls + 1``,
``area = area_ratio * w * h``. Image ids are positions in the sorted image list plus 1, the same
ids ``YOLOKptDataset`` gives its samples. Label errors stop the conversion with the file and
line; unreadable images are skipped and logged (``docs/data.md``).
"""
import argparse
import json
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

from turtle_plugin.datasets import AREA_RATIO, YOLOKptDataset, default_pose_metainfo

__all__ = ['yolo_to_coco', 'parse_args', 'main']


def yolo_to_coco(data_yaml: str = '',
                 split: str = 'train',
                 img_dir: str = '',
                 label_dir: str = '',
                 metainfo: Union[str, dict, None] = None,
                 num_keypoints: Optional[int] = None,
                 names: Optional[Sequence[str]] = None,
                 area_ratio: float = AREA_RATIO,
                 out_file: Optional[str] = None) -> Dict:
    """COCO keypoint json of a YOLO split.

    Args:
        data_yaml (str): YOLOv7/Ultralytics data yaml; empty to use ``img_dir``.
        split (str): split of the data yaml.
        img_dir (str): image folder when there is no data yaml.
        label_dir (str): label folder (empty: ``images/`` -> ``labels/`` sibling rule).
        metainfo (str | dict, optional): MMPose metainfo file or dict (keypoint names,
            skeleton); default derived from the yaml (``kpt_shape``, names from ``kpt_names``,
            ``flip_idx``) or from ``num_keypoints``.
        num_keypoints (int, optional): K when neither metainfo nor ``kpt_shape`` gives it.
        names (Sequence[str], optional): class names when there is no data yaml.
        area_ratio (float): ``area = area_ratio * box area``.
        out_file (str, optional): where to write the json.

    Returns:
        dict: the COCO json.
    """
    if isinstance(metainfo, str):
        metainfo = dict(from_file=metainfo)
    if metainfo is None and num_keypoints is not None:
        metainfo = default_pose_metainfo(num_keypoints)
    if names:
        metainfo = dict(metainfo or {}, classes=tuple(names))
    dataset = YOLOKptDataset(
        data_yaml=data_yaml,
        split=split,
        data_prefix=dict(img=img_dir, label=label_dir),
        metainfo=metainfo,
        area_ratio=area_ratio,
        use_cache=False,
        lazy_init=True)
    coco = dataset.to_coco()
    if out_file:
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        Path(out_file).write_text(json.dumps(coco))
    return coco


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_yaml', nargs='?', default='', help='YOLO data yaml')
    parser.add_argument('--split', default='train', help='split of the data yaml')
    parser.add_argument('--img-dir', default='', help='image folder (without a data yaml)')
    parser.add_argument('--label-dir', default='', help='label folder (default: sibling labels/)')
    parser.add_argument('--metainfo', help='MMPose metainfo file, e.g. '
                        'configs/_base_/datasets/turtle.py')
    parser.add_argument('--num-keypoints', type=int, help='K when no metainfo/kpt_shape says')
    parser.add_argument('--names', nargs='+', help='class names (without a data yaml)')
    parser.add_argument('--area-ratio', type=float, default=AREA_RATIO,
                        help='instance area as a fraction of its box area')
    parser.add_argument('--out', required=True, help='output json')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if not args.data_yaml and not args.img_dir:
        raise SystemExit('give a data yaml or --img-dir')
    coco = yolo_to_coco(args.data_yaml, args.split, args.img_dir, args.label_dir, args.metainfo,
                        args.num_keypoints, args.names, args.area_ratio, args.out)
    print(f'wrote {args.out}: {len(coco["images"])} images, {len(coco["annotations"])} '
          f'annotations, {len(coco["categories"])} categories')


if __name__ == '__main__':
    main()
