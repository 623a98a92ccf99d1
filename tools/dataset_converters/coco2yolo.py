"""Convert a COCO keypoint json to YOLO keypoint labels (Ultralytics layout + data yaml).

    python tools/dataset_converters/coco2yolo.py ann.json --img-dir images/ --out-dir yolo/ \
        --split train --link-images

Writes one label file per image (empty for images without objects) where the YOLO sibling rule
looks for it -- ``OUT/images/<file_name>`` with its last ``images`` folder renamed ``labels`` --
the images there as symlinks or copies when asked, and ``OUT/data.yaml`` (``names``,
``kpt_shape``, and the categories' keypoint names as Ultralytics' ``kpt_names`` when the data
yaml reader accepts them -- every category that lists names lists the same K, each once --
otherwise a warning gives the reader's reason and the yaml names none). Class ``cls`` is the
category's position in id order; keypoints are written as ``x y`` when the ``(0, 0)`` =
unlabelled rule loses nothing, as ``x y v`` otherwise (``--kpt-dim`` forces either). Crowd
annotations and boxes without area are skipped and logged; keypoint lists of the wrong length
are an error naming the annotation.
"""
import argparse
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import yaml
from mmengine.logging import print_log

from turtle_plugin.datasets import YOLOLabelError, coco_annotations_to_yolo_rows
from turtle_plugin.datasets.yolo_format import label_path_for, place_image, read_kpt_names
from turtle_plugin.datasets.coco_conversion import choose_kpt_dim, format_label_rows

__all__ = ['coco_to_yolo', 'parse_args', 'main']


def _num_keypoints(coco: Dict) -> int:
    for cat in coco.get('categories', []):
        if cat.get('keypoints'):
            return len(cat['keypoints'])
    for ann in coco.get('annotations', []):
        if ann.get('keypoints') is not None:
            return len(ann['keypoints']) // 3
    return 0


def coco_to_yolo(coco_json: Union[str, Dict],
                 out_dir: str,
                 img_dir: Optional[str] = None,
                 split: str = 'train',
                 kpt_dim: Optional[int] = None,
                 num_keypoints: Optional[int] = None,
                 link_images: bool = False,
                 copy_images: bool = False) -> Dict:
    """Write YOLO labels (and a data yaml) for a COCO keypoint json.

    Args:
        coco_json (str | dict): the json file or its content.
        out_dir (str): output folder.
        img_dir (str, optional): folder the json's ``file_name`` entries are relative to; needed
            to link or copy images.
        split (str): split name written into the data yaml.
        kpt_dim (int, optional): 2 or 3 keypoint columns; chosen automatically when omitted.
        num_keypoints (int, optional): K; from the categories or annotations when omitted.
        link_images (bool): symlink the images into ``out_dir/images``.
        copy_images (bool): copy the images into ``out_dir/images``.

    Returns:
        dict: ``names``, ``num_keypoints``, ``kpt_dim``, ``label_files`` and ``data_yaml``.
    """
    source = str(coco_json) if not isinstance(coco_json, dict) else 'coco json'
    coco = coco_json if isinstance(coco_json, dict) else json.loads(Path(coco_json).read_text())
    cats = sorted(coco['categories'], key=lambda c: c['id'])
    cat_to_cls = {c['id']: i for i, c in enumerate(cats)}
    k = _num_keypoints(coco) if num_keypoints is None else num_keypoints
    anns_by_image, skipped = defaultdict(list), []
    for index, ann in enumerate(coco.get('annotations', [])):
        w, h = ann['bbox'][2:4]
        if ann.get('iscrowd', 0) or w <= 0 or h <= 0:
            skipped.append(f'annotation #{index} (id {ann.get("id")}): '
                           f'{"crowd" if ann.get("iscrowd", 0) else "box without area"}')
            continue
        anns_by_image[ann['image_id']].append(ann)
    rows_by_file = {}
    for img in coco['images']:
        if 'width' not in img or 'height' not in img:
            raise YOLOLabelError(f'{source}: image id {img["id"]} has no width/height')
        rows_by_file[img['file_name']] = coco_annotations_to_yolo_rows(
            anns_by_image[img['id']], img['width'], img['height'], cat_to_cls, k, source)
    if kpt_dim is None:
        all_rows = np.concatenate([np.zeros((0, 5 + 3 * k))] + list(rows_by_file.values()))
        kpt_dim = choose_kpt_dim(all_rows) if k else 2
    out = Path(out_dir)
    label_files = []
    for file_name, rows in rows_by_file.items():
        label = label_path_for(out / 'images' / file_name)  # the rule readers apply
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(format_label_rows(rows, kpt_dim))
        label_files.append(label)
        if img_dir is not None and (link_images or copy_images):
            _place_image(Path(img_dir) / file_name, out / 'images' / file_name, link_images)
    if skipped:
        print_log(f'{len(skipped)} annotations skipped:\n  ' + '\n  '.join(skipped[:10]),
                  logger='current', level=logging.WARNING)
    names = [c['name'] for c in cats]
    data = {split: 'images', 'names': dict(enumerate(names))}
    data_yaml = out / 'data.yaml'
    if k:
        data.update(kpt_shape=[k, kpt_dim])
        # Ultralytics' kpt_names: each category's own keypoint names, when the reader's own
        # check of kpt_names accepts them (so the yaml written is always one it reads)
        listed = {i: c['keypoints'] for i, c in enumerate(cats) if c.get('keypoints')}
        try:
            if read_kpt_names(listed, names, (k, kpt_dim), data_yaml) is not None:
                data.update(kpt_names={i: [str(n) for n in v] for i, v in listed.items()})
        except YOLOLabelError as error:  # the labels stand; the yaml names no keypoints
            print_log(f"{source}: the categories' keypoint names are left out of the data yaml, "
                      f'which would not read with them: {error}', logger='current',
                      level=logging.WARNING)
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return dict(names=names, num_keypoints=k, kpt_dim=kpt_dim, label_files=label_files,
                data_yaml=data_yaml)


def _place_image(src: Path, dst: Path, link: bool) -> None:
    if not src.is_file():
        raise YOLOLabelError(f'image {src} listed in the json does not exist')
    place_image(src, dst, link)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('coco_json', help='COCO keypoint json')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--img-dir', help='folder the json file names are relative to')
    parser.add_argument('--split', default='train', help='split name in the data yaml')
    parser.add_argument('--kpt-dim', type=int, choices=[2, 3], help='force 2 or 3 columns')
    parser.add_argument('--num-keypoints', type=int, help='K (default: from the json)')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--link-images', action='store_true', help='symlink images into OUT')
    group.add_argument('--copy-images', action='store_true', help='copy images into OUT')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    result = coco_to_yolo(args.coco_json, args.out_dir, args.img_dir, args.split, args.kpt_dim,
                          args.num_keypoints, args.link_images, args.copy_images)
    print(f'wrote {len(result["label_files"])} label files ({result["num_keypoints"]} keypoints, '
          f'{result["kpt_dim"]} columns each) and {result["data_yaml"]}')


if __name__ == '__main__':
    main()
