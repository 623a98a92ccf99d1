"""Write augmented samples of a config's dataset as images with boxes, keypoints and skeleton.

    python tools/browse_dataset.py configs/tiger_kpt_tiny.py --output-dir work_dirs/browse --num 8

Works with keypoint pipelines (ending in ``PackPoseInputs``), detection pipelines (ending in
``PackDetInputs``) and unpacked pipelines. Visible keypoints are filled dots, keypoints that are
labelled but not visible (e.g. pushed off the image) are not drawn.
"""
import argparse
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import DATASETS, init_default_scope
from mmengine.utils import import_modules_from_strings

import turtle_plugin  # noqa: F401  registers the plugin's datasets and transforms

__all__ = ['parse_args', 'sample_arrays', 'draw_sample', 'browse']


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--output-dir', required=True, help='folder for the drawn samples')
    parser.add_argument('--num', type=int, default=8, help='number of samples to write')
    parser.add_argument('--phase', default='train', choices=['train', 'val', 'test'],
                        help='which dataloader\'s dataset to browse')
    parser.add_argument('--seed', type=int, default=0, help='random seed of the augmentations')
    parser.add_argument('--ext', default='jpg', choices=['jpg', 'png'], help='image format')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_dataloader.dataset.split=val')
    return parser.parse_args(argv)


def _numpy(value) -> Optional[np.ndarray]:
    if value is None:
        return None
    if hasattr(value, 'tensor'):  # mmdet HorizontalBoxes
        value = value.tensor
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def sample_arrays(item: Dict) -> Tuple[np.ndarray, Dict[str, Optional[np.ndarray]]]:
    """Image (H, W, 3 uint8) and ``bboxes``, ``keypoints``, ``keypoints_visible`` of a sample.

    Args:
        item (dict): pipeline output, packed (``inputs`` + ``data_samples``) or not.

    Returns:
        tuple: the image and a dict of arrays (None where the sample has none).
    """
    if 'data_samples' in item:
        img = _numpy(item['inputs']).transpose(1, 2, 0)
        gt = item['data_samples'].gt_instances
        fields = dict(bboxes=gt.get('bboxes'), keypoints=gt.get('keypoints'),
                      keypoints_visible=gt.get('keypoints_visible'))
    else:
        img = item['img']
        fields = dict(bboxes=item.get('bbox'), keypoints=item.get('keypoints'),
                      keypoints_visible=item.get('keypoints_visible'))
    img = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))
    return img, {key: _numpy(value) for key, value in fields.items()}


def draw_sample(img: np.ndarray, arrays: Dict[str, Optional[np.ndarray]],
                skeleton: Sequence[Tuple[int, int]] = (),
                colors: Optional[np.ndarray] = None) -> np.ndarray:
    """Draw boxes (green), skeleton links and visible keypoints on a copy of ``img``."""
    canvas = img.copy()
    radius = max(2, round(max(img.shape[:2]) / 200))
    bboxes, kpts, vis = arrays['bboxes'], arrays['keypoints'], arrays['keypoints_visible']
    for box in ([] if bboxes is None else bboxes.reshape(-1, 4)):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 255, 0), max(1, radius // 2))
    if kpts is None:
        return canvas
    vis = np.ones(kpts.shape[:2]) if vis is None else vis.reshape(kpts.shape[:2])
    for points, visible in zip(kpts, vis):
        for a, b in skeleton:
            if visible[a] > 0 and visible[b] > 0:
                cv2.line(canvas, tuple(int(v) for v in points[a]),
                         tuple(int(v) for v in points[b]), (255, 153, 51), max(1, radius // 2))
        for k, (point, v) in enumerate(zip(points, visible)):
            if v > 0:
                color = (0, 0, 255) if colors is None else tuple(int(c) for c in colors[k])
                cv2.circle(canvas, (int(point[0]), int(point[1])), radius, color, -1)
    return canvas


def browse(cfg: Config, output_dir: str, num: int, phase: str = 'train', seed: int = 0,
           ext: str = 'jpg') -> list:
    """Build the ``phase`` dataset of ``cfg`` and write ``num`` drawn samples.

    Returns:
        list[Path]: the written files.
    """
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    init_default_scope(cfg.get('default_scope', 'mmpose'))
    np.random.seed(seed)
    dataset = DATASETS.build(cfg[f'{phase}_dataloader']['dataset'])
    meta = dataset.metainfo
    skeleton = meta.get('skeleton_links', [])
    colors = meta.get('keypoint_colors')
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(min(num, len(dataset))):
        img, arrays = sample_arrays(dataset[index])
        path = out / f'{phase}_{index:04d}.{ext}'
        cv2.imwrite(str(path), draw_sample(img, arrays, skeleton, colors))
        written.append(path)
    return written


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    written = browse(cfg, args.output_dir, args.num, args.phase, args.seed, args.ext)
    print(f'wrote {len(written)} samples to {args.output_dir}')


if __name__ == '__main__':
    main()
