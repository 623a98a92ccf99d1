"""Check a config's anchors against its training boxes, and optionally fit new ones.

    python tools/analysis/check_anchors.py configs/tiger_kpt_tiny.py
    python tools/analysis/check_anchors.py configs/tiger_kpt_tiny.py --kmeans --img-size 256

Prints the best possible recall (BPR: fraction of boxes with an anchor within the assigner's
side-ratio limit ``anchor_t``) and the mean number of such anchors per box, as YOLOv5/v7's
autoanchor does. With ``--kmeans`` it fits new anchors (k-means + mutation search), sorted by
area and grouped per level, and prints them as a config line. Box sizes are measured at the
training size: each image's long side scaled to ``--img-size``, as the letterbox does.
"""
import argparse
import copy
from typing import Optional, Sequence

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import DATASETS, init_default_scope
from mmengine.utils import import_modules_from_strings

import turtle_plugin  # noqa: F401  registers the plugin's datasets
from turtle_plugin.models.heads.yolov7_head import YOLOV7_P5_ANCHORS
from turtle_plugin.models.task_modules import (anchors_to_levels, check_anchor_fit,
                                               gt_box_sizes, kmeans_anchors)

__all__ = ['parse_args', 'head_config', 'check_anchors', 'main']


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--img-size', type=int, default=None,
                        help='training image side (default: the head\'s img_size, else 640)')
    parser.add_argument('--thr', type=float, default=None,
                        help='anchor-matching side-ratio limit (default: the assigner\'s '
                        'anchor_t, else 4.0)')
    parser.add_argument('--kmeans', action='store_true', help='fit new anchors')
    parser.add_argument('--gen', type=int, default=1000, help='mutation generations')
    parser.add_argument('--seed', type=int, default=0, help='seed of the anchor search')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. '
                        'train_dataloader.dataset.data_root=data/other/')
    return parser.parse_args(argv)


def head_config(cfg: Config) -> dict:
    """The YOLOv7 head config of a model: ``model.head`` (MMPose) or ``model.bbox_head``."""
    model = cfg['model']
    head = model.get('head', model.get('bbox_head'))
    if head is None:
        raise KeyError('the config\'s model has neither `head` nor `bbox_head`')
    return head


def _without_pipeline(dataset_cfg: dict) -> dict:
    """The dataset config with an empty pipeline (only the annotations are read)."""
    dataset_cfg = copy.deepcopy(dataset_cfg)
    inner = dataset_cfg
    while 'pipeline' not in inner and isinstance(inner.get('dataset'), dict):  # wrappers
        inner = inner['dataset']
    inner['pipeline'] = []
    return dataset_cfg


def check_anchors(cfg: Config, img_size: Optional[int] = None, thr: Optional[float] = None,
                  kmeans: bool = False, gen: int = 1000, seed: int = 0) -> dict:
    """Measure the config's anchors on its training boxes (and fit new ones).

    Args:
        cfg (Config): a training config with ``model`` and ``train_dataloader``.
        img_size (int, optional): training image side; None reads the head's ``img_size``.
        thr (float, optional): side-ratio limit; None reads the assigner's ``anchor_t``.
        kmeans (bool): also fit new anchors.
        gen (int): mutation generations of the fit.
        seed (int): seed of the fit.

    Returns:
        dict: ``num_boxes``, ``img_size``, ``thr``, ``anchors``, ``bpr``, ``aat`` and, with
        ``kmeans``, ``new_anchors`` (per level, whole pixels), ``new_bpr``, ``new_aat``.
    """
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    init_default_scope(cfg.get('default_scope', 'mmpose'))
    head = head_config(cfg)
    anchors = head.get('anchors', YOLOV7_P5_ANCHORS)
    img_size = img_size or head.get('img_size', 640)
    thr = thr or head.get('assigner', {}).get('anchor_t', 4.0)
    dataset = DATASETS.build(_without_pipeline(cfg['train_dataloader']['dataset']))
    wh = gt_box_sizes(dataset, img_size)
    if len(wh) == 0:
        raise ValueError('the training set has no boxes to check the anchors against')
    num_levels = len(anchors)
    bpr, aat = check_anchor_fit(wh, anchors, thr)
    result = dict(num_boxes=len(wh), img_size=img_size, thr=thr,
                  anchors=anchors_to_levels(np.asarray(anchors, float).reshape(-1, 2),
                                            num_levels), bpr=bpr, aat=aat)
    if kmeans:
        num_anchors = int(np.asarray(anchors).reshape(-1, 2).shape[0])
        new = anchors_to_levels(
            kmeans_anchors(wh, n=num_anchors, thr=thr, gen=gen, seed=seed), num_levels)
        result['new_anchors'] = new
        result['new_bpr'], result['new_aat'] = check_anchor_fit(wh, new, thr)
    return result


def _anchor_line(levels) -> str:
    return 'anchors = [' + ', '.join(
        '[' + ', '.join(f'({w}, {h})' for w, h in level) + ']' for level in levels) + ']'


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    result = check_anchors(cfg, args.img_size, args.thr, args.kmeans, args.gen, args.seed)
    print(f'{result["num_boxes"]} training boxes at {result["img_size"]} px, '
          f'anchor_t = {result["thr"]:g}')
    print(f'config anchors: anchors/target = {result["aat"]:.2f}, best possible recall = '
          f'{result["bpr"]:.4f}')
    print(f'    {_anchor_line(result["anchors"])}')
    if 'new_anchors' in result:
        print(f'k-means anchors: anchors/target = {result["new_aat"]:.2f}, best possible recall '
              f'= {result["new_bpr"]:.4f}; paste into the config:')
        print(f'    {_anchor_line(result["new_anchors"])}')
    return result


if __name__ == '__main__':
    main()
