"""Keypoint accuracy beside the peers: same data, same budget, one evaluator.

Trains every requested model from scratch on one dataset with the same number of epochs, batch
size and input size, for each seed, and scores every one of them with the same evaluator on the
same validation split: the plugin's ``KptBoxCocoMetric`` against one COCO ground-truth file
(MMPose's OKS AP with the dataset's sigmas, box mAP of the same predictions, mean pixel error
and PCK@0.05 per keypoint). Each run validates every ``--val-interval`` epochs, so the per-epoch
curves come from that evaluator too. Reports, per model, the mean and the spread (min..max)
over seeds of the last epoch's scores and of the best OKS AP; a table, a JSON file and a plot of
OKS AP per epoch.

Models (``--models``):

``--arch`` (``tiny``, the default, or ``l``) sets the size every model of the comparison trains
at (:data:`ARCHS`): ours' default config, YOLOX-Pose's config, and the original's model yaml
``--yolov7-cfg`` must take (checked: it must feed its head the channels ours' head takes).

* ``ours``: ``--ours-config`` (default ``configs/tiger_kpt_tiny.py`` at ``--arch tiny``,
  ``configs/turtle_kpt.py``, YOLOv7-l, at ``--arch l``: the keypoint recipe);
  ``ours@CONFIG`` names another config. ``+name`` suffixes apply the study's variants
  (:data:`VARIANTS`) in order, e.g. ``ours+p5`` (the seed's hyp.scratch.p5 + OTA recipe of
  ``configs/turtle_kpt_p5.py``) or ``ours+p5+v5+pose_aug`` (the original pose branch's recipe).
* ``yoloxpose``: MMPose's shipped ``yoloxpose_tiny_4xb64-300e_coco-416.py`` (``--arch l``:
  ``yoloxpose_l_8xb32-300e_coco-640.py``), adapted as little
  as the comparison needs: the data, the number of keypoints and their sigmas, the input size
  (its multi-scale range scaled alike), the epochs (its schedule's milestones scaled alike), the
  batch; no pretrained backbone (both sides from scratch); its own optimizer, augmentation,
  assigner and losses. ``yoloxpose+auto_lr`` (:data:`PEER_VARIANTS`) is the same run with its
  learning rate scaled to the bench's batch, as MMPose's ``tools/train.py --auto-scale-lr``
  scales it (the shipped lr is for 256 images a step).

* ``yolov7pose``: the original YOLOv7 pose branch's own ``train.py --hyp data/hyp.pose.yaml``
  from the checkout ``--yolov7-root``, yolov7-tiny (``--yolov7-cfg``, the main branch's
  ``cfg/training/yolov7-tiny.yaml``; ``--arch l``: its ``yolov7.yaml``) with the branch's
  keypoint head, run and scored by
  ``bench/yolov7_pose_peer.py``, which says what it adapts at run time (the branch hard-codes
  COCO's 17 keypoints, flip pairs and sigmas). YOLO layout with image folders only.

A run of any model whose weights turn NaN stops at that epoch (ours and ``yoloxpose``: the
plugin's ``DivergenceCheckHook``; ``yolov7pose``: its peer script) and is reported under
``diverged`` (seed, epoch, its best OKS AP before), not averaged into the model's figures.

``--time-limit MINUTES`` bounds the bench's wall time (a lent GPU's session, a shared
machine): at the limit every run still training is stopped with its process group (the
original's saved epochs are then scored as they would have been at its end), runs not yet
started are listed as failed, and a stopped run is reported under ``stopped`` (seed, the last
epoch it evaluated, its OKS AP there) with its curve in the plot and the JSON, not averaged
into the model's figures: those are for the full budget only. ``stopped.json`` in its work dir
marks it, so ``--summarise-only`` reports it alike.

Data: a YOLO layout (``--data-root`` with ``--data-yaml``, or ``--train-images`` /
``--val-images`` folders with ``labels/`` beside ``images/``) or COCO json
(``--coco-train``, ``--coco-val`` and ``--img-prefix``); ``--metainfo`` gives the keypoint names,
flip pairs and sigmas. Example (the Tiger-Pose comparison of BENCHMARKS.md)::

    python bench/accuracy.py --data-root ../shared/data/tiger_pose \\
        --metainfo configs/_base_/datasets/tiger.py --epochs 90 --seeds 0 1 \\
        --models ours yoloxpose --jobs 2 --out-dir bench_results/accuracy_tiger
"""
import argparse
import copy
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from _common import (REPO_ROOT, machine_info, print_table, result_payload, start_revision,
                     utc_now, write_json)
from yolov7_pose_peer import DIVERGED_FILE

# --arch: the model size every model of one comparison trains at -- ours' default config,
# MMPose's YOLOX-Pose config (with its input size: its multi-scale range scales with it) and
# the channels the original's model yaml (--yolov7-cfg) must feed its head, which are ours'
# head_module.in_channels at that size
ARCHS = {
    'tiny': dict(ours='configs/tiger_kpt_tiny.py',
                 yoloxpose=('yoloxpose_tiny_4xb64-300e_coco-416.py', 416),
                 yolov7_cfg='yolov7-tiny.yaml', head_channels=[128, 256, 512]),
    'l': dict(ours='configs/turtle_kpt.py',
              yoloxpose=('yoloxpose_l_8xb32-300e_coco-640.py', 640),
              yolov7_cfg='yolov7.yaml', head_channels=[256, 512, 1024]),
}
YOLOXPOSE_DIR = 'configs/body_2d_keypoint/yoloxpose/coco'
YOLOXPOSE_EPOCHS = 300
METRIC_KEYS = {  # report name -> key in the evaluator's output
    'AP': 'coco/AP', 'AP50': 'coco/AP .5', 'AP75': 'coco/AP .75', 'box_mAP': 'coco/bbox_mAP',
    'err_px': 'kpt/mean_err_px', 'pck': 'kpt/pck'
}
HEADERS = ['model', 'seeds', 'epochs', 'OKS AP', 'AP50', 'AP75', 'box mAP', 'px error', 'PCK',
           'best AP', 'minutes', 'stopped', 'diverged']
STOPPED_FILE = 'stopped.json'  # in a run's work dir: the bench stopped it at --time-limit


# ----------------------------------------------------------------------------- study variants
def _pipelines(cfg) -> List[list]:
    """Every training pipeline of a config: the main one and CloseMosaicHook's stage 2."""
    return [cfg.train_dataloader.dataset.pipeline,
            cfg.default_hooks.close_mosaic.new_train_pipeline]


def _affine(cfg, **values) -> None:
    for pipe in _pipelines(cfg):
        for step in _walk(pipe):
            if step.get('type') == 'KptRandomAffine':
                step.update(values)


def _walk(steps: Sequence) -> List[dict]:
    """Every transform dict in a pipeline, inside RandomChoice and pre_transforms too."""
    found = []
    for step in steps:
        if isinstance(step, (list, tuple)):
            found += _walk(step)
        elif isinstance(step, dict):
            found.append(step)
            for key in ('transforms', 'pre_transform'):
                found += _walk(step.get(key) or [])
    return found


def _pose_aug(cfg) -> None:
    """hyp.pose: 4-image mosaic only, scale 0.5, translate 0.1, no MixUp."""
    pipe = cfg.train_dataloader.dataset.pipeline
    for i, step in enumerate(pipe):
        if step.get('type') == 'RandomChoice':  # mosaic 4 (80 %) / 9 (20 %) -> mosaic 4
            pipe[i] = step['transforms'][0][0]
    pipe[:] = [s for s in pipe if s.get('type') != 'KptMixUp']
    _affine(cfg, translate=0.1, scale=0.5)


def _set_head(cfg, **values) -> None:
    cfg.model.head.update(values)


def _p5(cfg) -> None:
    """The seed recipe (``configs/turtle_kpt_p5.py``) on any keypoint config: its assigner,
    keypoint losses and keypoint-conv init, and its training, stage-2 and evaluation
    pipelines."""
    from mmengine.config import Config
    p5 = Config.fromfile(str(REPO_ROOT / 'configs' / 'turtle_kpt_p5.py'))
    if tuple(p5.img_scale) != tuple(cfg.img_scale):
        raise SystemExit(f'the p5 recipe is written for {tuple(p5.img_scale)}, the config '
                         f'trains at {tuple(cfg.img_scale)}')
    _set_head(cfg, assigner=p5.model.head.assigner, loss_kpt_aux=None)
    cfg.model.head.head_module.update(kpt_prior=p5.model.head.head_module.kpt_prior)
    _sigma_warmup(cfg, 0)
    cfg.train_dataloader.dataset.pipeline = p5.train_dataloader.dataset.pipeline
    # closed for the last tenth, as the keypoint configs were when the bench's p5 rows ran
    cfg.default_hooks.close_mosaic.update(new_train_pipeline=p5.train_pipeline_stage2,
                                          num_last_epochs=None, last_ratio=0.1)
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.pipeline = p5.val_dataloader.dataset.pipeline


VARIANTS: Dict[str, Callable] = {
    # the seed's hyp.scratch.p5 + OTA recipe (configs/turtle_kpt_p5.py)
    'p5': _p5,
    # assigner: YOLOv5's candidates (the original pose branch) instead of OTA
    'v5': lambda cfg: _set_head(cfg, assigner=dict(type='YOLOv5Assigner')),
    'ota': lambda cfg: _set_head(cfg, assigner=dict(type='YOLOv7OTAAssigner')),
    # OTA with the predicted keypoints' OKS in its cost and its dynamic k, as YOLOX-Pose's
    # SimOTA (MMPose's SimOTAAssigner: oks_weight 3, dynamic_k_indicator 'oks')
    'ota_oks': lambda cfg: _set_head(cfg, assigner=dict(
        type='YOLOv7OTAAssigner', oks_weight=3.0, dynamic_k_indicator='oks')),
    # the OKS cost alone, k from the IoUs as YOLOv7 (the OKS k gives one positive per animal
    # while the keypoints are far off)
    'ota_okscost': lambda cfg: _set_head(cfg, assigner=dict(
        type='YOLOv7OTAAssigner', oks_weight=3.0)),
    # more candidate cells: all four neighbours of the centre's cell (5 per anchor) instead of
    # the two nearest (3), for whichever assigner the recipe has by then
    'cells5': lambda cfg: cfg.model.head.assigner.update(neighbour_offset=1.0),
    'pose_aug': _pose_aug,
    # auxiliary scale-normalised L1 keypoint term beside 1 - OKS
    'l1': lambda cfg: _set_head(cfg, loss_kpt_aux=dict(type='KptScaledL1Loss', loss_weight=0.1)),
    'l1x3': lambda cfg: _set_head(cfg,
                                  loss_kpt_aux=dict(type='KptScaledL1Loss', loss_weight=0.3)),
    'no_l1': lambda cfg: _set_head(cfg, loss_kpt_aux=None),
    # the mosaic closed for the last half of the epochs (the keypoint configs' default since the
    # study) or the last tenth (the default before: 10 of 100 epochs)
    'close50': lambda cfg: cfg.default_hooks.close_mosaic.update(num_last_epochs=None,
                                                                 last_ratio=0.5),
    'close10': lambda cfg: cfg.default_hooks.close_mosaic.update(num_last_epochs=None,
                                                                 last_ratio=0.1),
    # ... or longer: the last three quarters, or every epoch (no mosaic at all: whole frames
    # with hyp.pose's affine, flip and HSV only)
    'close75': lambda cfg: cfg.default_hooks.close_mosaic.update(num_last_epochs=None,
                                                                 last_ratio=0.75),
    'close100': lambda cfg: cfg.default_hooks.close_mosaic.update(num_last_epochs=None,
                                                                  last_ratio=1.0),
    # YOLO-Pose's deeper keypoint branch (dw_conv_kpt: depthwise 3x3 / 1x1 blocks per level)
    'dw_kpt': lambda cfg: cfg.model.head.head_module.update(kpt_head='dw'),
    # keypoint conv init: every keypoint starts at its cell's centre (bias 0.5; the keypoint
    # configs' default from ae04e54 until the 300-epoch check) or at the diagonal neighbour's
    # (bias 0, the configs' default, as the original's conv starts on average)
    'kpt_centre': lambda cfg: cfg.model.head.head_module.update(kpt_prior='centre'),
    'kpt_zero': lambda cfg: cfg.model.head.head_module.update(kpt_prior='zero'),
    # the OKS loss's sigmas (evaluation keeps the metainfo's; small sigmas make 1 - OKS flat a
    # few pixels off): 1/K throughout (Ultralytics'), the metainfo's throughout (the default
    # before the study), or warmed up from 1/K to the metainfo's over the first half (the
    # configs' default since)
    'sigma_1k': lambda cfg: _sigma_warmup(cfg, 0, kpt_sigmas='uniform'),
    'sigma_meta': lambda cfg: _sigma_warmup(cfg, 0),
    'sigma_warmup': lambda cfg: _sigma_warmup(cfg, 0.5),
    # twice the SGD learning rate (0.02 instead of hyp.scratch's 0.01): on the short schedules
    # of small sets the default underfits (its error on the training frames equals that on val)
    'lr2x': lambda cfg: cfg.optim_wrapper.optimizer.update(lr=2 * cfg.optim_wrapper.optimizer.lr),
    # YOLOv7's warm-up of at least 1000 iterations (turtle_kpt_p5.py's; the turtle keypoint
    # configs' until the bench measured it) instead of the keypoint configs' 3 epochs: on a set
    # of 72-210 frames at batch 8, 1000 iterations are 37-111 epochs, a third to all of a
    # 90-100-epoch run
    'warmup1k': lambda cfg: cfg.default_hooks.param_scheduler.update(min_warmup_iters=1000),
    # evaluation images shrunk by pixel-area averaging (YOLOv7's test.py) or bilinear
    'area_eval': lambda cfg: _val_shrink(cfg, 'area'),
    'linear_eval': lambda cfg: _val_shrink(cfg, 'linear'),
}


# a peer's variants: how a user of that peer's own tools could run it, not our recipe on it
PEER_VARIANTS: Dict[str, Callable] = {
    # MMPose's `tools/train.py --auto-scale-lr`: MMEngine's Runner scales the optimizer's lr by
    # the real batch over the config's auto_scale_lr.base_batch_size (256 for YOLOX-Pose)
    'auto_lr': lambda cfg: cfg.auto_scale_lr.update(enable=True),
}


def _apply_variants(spec: str, cfg, variants: Dict[str, Callable]) -> None:
    for variant in spec.split('+')[1:]:
        if variant not in variants:
            raise SystemExit(f'unknown variant {variant!r} in {spec!r}; known: '
                             f'{", ".join(sorted(variants))}')
        variants[variant](cfg)


def _sigma_warmup(cfg, ratio: float, **head) -> None:
    """The OKS loss's sigmas warmed up from 1/K over ``ratio`` of the epochs (0: off), with
    ``head`` settings (e.g. ``kpt_sigmas``)."""
    cfg.default_hooks.kpt_sigma_warmup = dict(type='KptSigmaWarmupHook', start='uniform',
                                              warmup_ratio=ratio)
    _set_head(cfg, **head)


def _val_shrink(cfg, mode: str) -> None:
    for loader in ('val_dataloader', 'test_dataloader'):
        for step in cfg[loader].dataset.pipeline:
            if step.get('type') == 'KptLetterResize':
                step['shrink_interpolation'] = mode


# ----------------------------------------------------------------------------- data
def dataset_source(args: argparse.Namespace, split: str) -> dict:
    """The dataset fields that say where a split is (YOLO layout or COCO json)."""
    if args.coco_train:
        return dict(type='CocoDataset', data_root='', data_mode='bottomup',
                    ann_file=str(Path(args.coco_train if split == 'train' else args.coco_val)
                                 .resolve()),
                    data_prefix=dict(img=str(Path(args.img_prefix).resolve()) + '/'))
    root = str(Path(args.data_root).resolve()) + '/'
    if args.data_yaml:
        return dict(type='YOLOKptDataset', data_root=root, data_yaml=args.data_yaml, split=split)
    folder = args.train_images if split == 'train' else args.val_images
    return dict(type='YOLOKptDataset', data_root=root, data_yaml='', split=split,
                data_prefix=dict(img=folder))


def val_ground_truth(args: argparse.Namespace, out_dir: Path) -> str:
    """One COCO ground-truth file for every model's evaluator."""
    if args.coco_train:
        return str(Path(args.coco_val).resolve())
    import turtle_plugin  # noqa: F401  (registers YOLOKptDataset)
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS
    init_default_scope('mmpose')
    dataset = DATASETS.build(dict(dataset_source(args, 'val'), metainfo=_metainfo(args),
                                  test_mode=True))
    return dataset.dump_coco_json(str(out_dir / 'val_ground_truth.json'))


def _metainfo(args: argparse.Namespace) -> dict:
    return dict(from_file=str(Path(args.metainfo).resolve()))


def _set_dataset(dataset_cfg: dict, source: dict, metainfo: dict) -> None:
    for key in ('data_yaml', 'split', 'ann_file', 'data_prefix', 'data_mode'):
        dataset_cfg.pop(key, None)
    dataset_cfg.update(copy.deepcopy(source), metainfo=metainfo)
    if source['type'] == 'CocoDataset':
        dataset_cfg.pop('image_cache_mb', None)


def _evaluator(gt_file: str) -> dict:
    return dict(type='KptBoxCocoMetric', ann_file=gt_file, score_mode='bbox', nms_mode='none')


# ----------------------------------------------------------------------------- configs
def ours_config(spec: str, args: argparse.Namespace, seed: int, gt_file: str):
    """The plugin's config for ``ours[@CONFIG][+variant...]`` on the bench's data and budget."""
    from mmengine.config import Config
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    name = spec.split('+')[0]
    config = name.split('@', 1)[1] if '@' in name else (args.ours_config
                                                        or ARCHS[args.arch]['ours'])
    cfg = Config.fromfile(str(REPO_ROOT / config))
    if tuple(cfg.img_scale) != (args.img_size, args.img_size):
        raise SystemExit(f'{config} trains at {tuple(cfg.img_scale)}, the bench at '
                         f'{args.img_size}: pass --img-size {cfg.img_scale[0]} or a config at '
                         f'that size')
    meta = _metainfo(args)
    num_keypoints = len(parse_pose_metainfo(dict(meta))['sigmas'])
    cfg.model.head.head_module.num_keypoints = num_keypoints
    cfg.model.head.kpt_sigmas = meta
    for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'),
                          ('test_dataloader', 'val')):
        _set_dataset(cfg[loader].dataset, dataset_source(args, split), meta)
        cfg[loader].num_workers = args.workers
        cfg[loader].persistent_workers = args.workers > 0
    cfg.train_dataloader.batch_size = args.batch
    cfg.optim_wrapper.paramwise_cfg.batch_size_per_gpu = args.batch
    close = cfg.default_hooks.close_mosaic
    if close.get('last_ratio') is None:  # a count of last epochs, scaled (a ratio scales itself)
        close.num_last_epochs = max(1, round(close.num_last_epochs * args.epochs
                                             / cfg.train_cfg.max_epochs))
    cfg.train_cfg.update(max_epochs=args.epochs, val_interval=args.val_interval,
                         dynamic_intervals=None)
    cfg.val_evaluator = cfg.test_evaluator = _evaluator(gt_file)
    _apply_variants(spec, cfg, VARIANTS)
    return _common_settings(cfg, seed)


def yoloxpose_config(spec: str, args: argparse.Namespace, seed: int, gt_file: str):
    """MMPose's YOLOX-Pose config of ``--arch`` on the bench's data and budget, from scratch,
    for ``yoloxpose[+variant...]`` (:data:`PEER_VARIANTS`)."""
    import mmpose
    from mmengine.config import Config
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    config, shipped_size = ARCHS[args.arch]['yoloxpose']
    cfg = Config.fromfile(str(Path(mmpose.__file__).parent / '.mim' / YOLOXPOSE_DIR / config))
    size, ratio = args.img_size, args.img_size / shipped_size
    meta = _metainfo(args)
    num_keypoints = len(parse_pose_metainfo(dict(meta))['sigmas'])
    cfg.custom_imports = dict(imports=['turtle_plugin'], allow_failed_imports=False)
    cfg.model.backbone.pop('init_cfg', None)  # from scratch, as ours
    cfg.model.head.num_keypoints = num_keypoints
    cfg.model.head.loss_oks.metainfo = meta['from_file']
    # its SimOTA assigner scores candidates by OKS, with COCO's 17 sigmas unless told otherwise
    cfg.model.head.assigner.oks_calculator = dict(type='PoseOKS', metainfo=meta['from_file'])
    low, high = cfg.model.data_preprocessor.batch_augments[0].random_size_range
    cfg.model.data_preprocessor.batch_augments[0].random_size_range = (
        _multiple_of_32(low * ratio), _multiple_of_32(high * ratio))
    for step in _walk(cfg.train_pipeline_stage1) + _walk(cfg.train_pipeline_stage2) \
            + _walk(cfg.val_pipeline):
        for key in ('img_scale', 'input_size'):
            if key in step:
                step[key] = (size, size)
        if step.get('type') == 'GenerateTarget':
            step['encoder'] = dict(step['encoder'], input_size=(size, size))
        # the tiny config shipped with mmpose 1.3.2 passes an argument that its PackPoseInputs
        # does not take; the labels it maps are those YOLOXPoseAnnotationProcessor writes anyway
        if step.get('type') == 'PackPoseInputs':
            step.pop('extra_mapping_labels', None)
    cfg.train_dataloader.dataset = dict(dataset_source(args, 'train'), metainfo=meta,
                                        pipeline=cfg.train_pipeline_stage1)
    cfg.val_dataloader.dataset = dict(dataset_source(args, 'val'), metainfo=meta,
                                      test_mode=True, pipeline=cfg.val_pipeline)
    cfg.test_dataloader = cfg.val_dataloader
    for loader in ('train_dataloader', 'val_dataloader'):
        cfg[loader].num_workers = args.workers
        cfg[loader].persistent_workers = args.workers > 0
    cfg.train_dataloader.batch_size = args.batch
    cfg.val_dataloader.batch_size = args.batch
    # the schedule's milestones (5 warm-up epochs, the mode switch 20 epochs before the end of
    # 300) scaled to the bench's epochs
    switch = max(1, round(20 * args.epochs / YOLOXPOSE_EPOCHS))
    warmup = max(1, round(5 * args.epochs / YOLOXPOSE_EPOCHS))
    end = args.epochs - switch
    warmup_lr, cosine, constant = cfg.param_scheduler
    warmup_lr.update(end=warmup)
    cosine.update(begin=warmup, T_max=end - warmup, end=end)
    constant.update(begin=end, end=args.epochs)
    # a budget of a few epochs (the tests') leaves no room for the cosine part
    cfg.param_scheduler = [warmup_lr, cosine, constant] if end > warmup else [warmup_lr, constant]
    for hook in cfg.custom_hooks:
        if hook['type'] == 'YOLOXPoseModeSwitchHook':
            hook['num_last_epochs'] = switch
            hook['new_train_pipeline'] = cfg.train_pipeline_stage2
    cfg.train_cfg.update(max_epochs=args.epochs, val_interval=args.val_interval,
                         dynamic_intervals=None)
    cfg.default_hooks.checkpoint.update(interval=args.val_interval, save_best='coco/AP',
                                        rule='greater')
    # the NaN stop all three models get here (ours from its runtime config): it changes no
    # step, and a diverged run is reported as such instead of training on NaN weights
    cfg.default_hooks.divergence_check = dict(type='DivergenceCheckHook')
    cfg.val_evaluator = cfg.test_evaluator = _evaluator(gt_file)
    _apply_variants(spec, cfg, PEER_VARIANTS)
    return _common_settings(cfg, seed)


def check_yolov7pose(args: argparse.Namespace) -> None:
    """What the ``yolov7pose`` peer needs: the original's checkout and model file, a YOLO
    layout, and the modules its code imports."""
    arch = ARCHS[args.arch]
    if not (args.yolov7_root and args.yolov7_cfg):
        raise SystemExit('yolov7pose needs --yolov7-root (a checkout of the pose branch) and '
                         f"--yolov7-cfg (the main branch's cfg/training/{arch['yolov7_cfg']} "
                         f'for --arch {args.arch})')
    if not (Path(args.yolov7_root) / 'train.py').is_file():
        raise SystemExit(f'yolov7pose: --yolov7-root {args.yolov7_root} has no train.py '
                         '(a checkout of the pose branch of WongKinYiu/yolov7)')
    if not Path(args.yolov7_cfg).is_file():
        raise SystemExit(f'yolov7pose: --yolov7-cfg {args.yolov7_cfg}: no such file')
    from yolov7_pose_peer import detect_input_channels
    channels = detect_input_channels(args.yolov7_cfg)
    if channels != arch['head_channels']:
        raise SystemExit(
            f'yolov7pose: --yolov7-cfg {args.yolov7_cfg} feeds its head {channels} channels, '
            f"ours at --arch {args.arch} {arch['head_channels']}: pass the main branch's "
            f"cfg/training/{arch['yolov7_cfg']}, or the --arch of that file")
    if args.coco_train or args.data_yaml:
        raise SystemExit('yolov7pose reads a YOLO layout given by --train-images / '
                         '--val-images, not --coco-train or --data-yaml')
    from yolov7_pose_peer import check_its_imports
    check_its_imports()


def config_builder(spec: str) -> Callable:
    """``ours_config`` or ``yoloxpose_config``, whichever builds the ``--models`` entry ``spec``
    (``yolov7pose`` runs the original's own code, no config)."""
    name = spec.split('+')[0]
    if name == 'yoloxpose':
        return yoloxpose_config
    if name.split('@')[0] == 'ours':
        return ours_config
    raise SystemExit(f"unknown model {spec!r}: 'ours[@CONFIG][+variant...]', "
                     "'yoloxpose[+variant...]' or 'yolov7pose'")


def check_models(args: argparse.Namespace) -> None:
    """Build every ``--models`` entry once before the first run trains: a typo, an unknown
    variant or a missing peer requirement would otherwise stop the bench only when that
    model's turn comes, an hour in (and a misspelt peer would have trained ``ours``)."""
    for spec in dict.fromkeys(args.models):
        if spec == 'yolov7pose':
            check_yolov7pose(args)
        else:
            config_builder(spec)(spec, args, 0, '<ground truth>')


def yolov7pose_command(args: argparse.Namespace, seed: int, gt_file: str,
                       work_dir: Path) -> List[str]:
    """``bench/yolov7_pose_peer.py`` on the bench's data, budget and ground truth."""
    check_yolov7pose(args)
    return [sys.executable, str(REPO_ROOT / 'bench' / 'yolov7_pose_peer.py'),
            '--yolov7-root', str(Path(args.yolov7_root).resolve()),
            '--model-cfg', str(Path(args.yolov7_cfg).resolve()),
            '--work-dir', str(work_dir), '--data-root', str(Path(args.data_root).resolve()),
            '--train-images', args.train_images, '--val-images', args.val_images,
            '--metainfo', str(Path(args.metainfo).resolve()), '--gt-file', gt_file,
            '--epochs', str(args.epochs), '--batch', str(args.batch),
            '--img-size', str(args.img_size), '--val-interval', str(args.val_interval),
            '--seed', str(seed), '--workers', str(args.workers)]


def _multiple_of_32(value: float) -> int:
    return max(32, int(round(value / 32)) * 32)


def _common_settings(cfg, seed: int):
    cfg.randomness = dict(seed=seed)
    cfg.default_hooks.logger.interval = 10
    if 'progress' in cfg.default_hooks:
        cfg.default_hooks.progress.enable = False
    return cfg


# ----------------------------------------------------------------------------- runs
def run_one(spec: str, seed: int, args: argparse.Namespace, gt_file: str, out_dir: Path,
            threads: int) -> subprocess.Popen:
    """Write the run's config and start ``tools/train.py`` on it; returns the process."""
    work_dir = out_dir / _run_name(spec, seed)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / STOPPED_FILE).unlink(missing_ok=True)  # a previous bench's
    if spec == 'yolov7pose':
        cmd = yolov7pose_command(args, seed, gt_file, work_dir)
    else:
        cfg = config_builder(spec)(spec, args, seed, gt_file)
        cfg.dump(str(work_dir / 'bench_config.py'))
        cmd = [sys.executable, str(REPO_ROOT / 'tools' / 'train.py'),
               str(work_dir / 'bench_config.py'), '--work-dir', str(work_dir)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONUNBUFFERED='1')
    log = open(work_dir / 'train.log', 'w')
    # its own process group (session), so that stop_run ends its DataLoader workers and the
    # original's child processes with it
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.started = time.time()
    proc.run = (spec, seed, work_dir)
    proc.log = log  # closed when the run ends
    proc.env = env
    return proc


def kill_group(proc: subprocess.Popen, grace: float = 30.) -> None:
    """End a run's process group: SIGTERM, ``grace`` seconds, then SIGKILL; whatever of the
    group outlives its leader (DataLoader workers) is killed too."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:  # the whole group has ended
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        break
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def stop_run(proc: subprocess.Popen, args: argparse.Namespace, gt_file: str,
             grace: float = 30.) -> Optional[subprocess.Popen]:
    """Stop a run at ``--time-limit`` and mark it (``stopped.json``). For the original, whose
    peer scores its saved epochs after its training, returns the process that scores them now
    (wait for it before reading the run); else None."""
    spec, seed, work_dir = proc.run
    kill_group(proc, grace)
    (Path(work_dir) / STOPPED_FILE).write_text(json.dumps(dict(
        reason=f'--time-limit {args.time_limit:g} min',
        minutes=round((time.time() - proc.started) / 60, 2))) + '\n')
    if spec != 'yolov7pose':
        return None
    return subprocess.Popen(yolov7pose_command(args, seed, gt_file, Path(work_dir))
                            + ['--stage', 'evaluate'], cwd=REPO_ROOT, env=proc.env,
                            stdout=getattr(proc, 'log', None), stderr=subprocess.STDOUT)


def _run_name(spec: str, seed: int) -> str:
    safe = spec.replace('@', '_').replace('/', '_').replace('+', '-').replace('.py', '')
    return f'{safe}_seed{seed}'


def read_curve(work_dir: Path) -> List[Dict[str, float]]:
    """Validation scores per epoch from MMEngine's ``scalars.json`` (the newest run). A last
    line cut short (a run stopped while writing it) is left out; any other is an error."""
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    if not files:
        raise RuntimeError(f'no scalars.json under {work_dir}: the run failed, see '
                           f'{work_dir / "train.log"}')
    curve = []
    lines = files[-1].read_text().splitlines()
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise RuntimeError(f'{files[-1]}, line {number}: {error}') from error
        if 'coco/AP' in entry:
            curve.append(dict(epoch=entry['step'],
                              **{name: entry.get(key) for name, key in METRIC_KEYS.items()},
                              per_keypoint_pck={k[4:-4]: v for k, v in entry.items()
                                                if k.startswith('kpt/') and k.endswith('_pck')
                                                and k != 'kpt/pck'}))
    return curve


def _read_marker(work_dir: Path, name: str) -> Optional[dict]:
    """The JSON marker ``name`` in a run's work dir, or None when the run has none."""
    path = Path(work_dir) / name
    return json.loads(path.read_text()) if path.is_file() else None


def read_stopped(work_dir: Path) -> Optional[dict]:
    """``{'reason': ..., 'minutes': ...}`` when the bench stopped the run at ``--time-limit``
    (:func:`stop_run`), else None."""
    return _read_marker(work_dir, STOPPED_FILE)


def read_divergence(work_dir: Path) -> Optional[dict]:
    """``{'epoch': N, 'non_finite': where}`` when the run stopped on non-finite weights (the
    ``yolov7pose`` peer writes it, :func:`yolov7_pose_peer.checkpoint_saver`), else None."""
    return _read_marker(work_dir, DIVERGED_FILE)


def _last_epoch(run: dict) -> int:
    """The last evaluated epoch; for a run that diverged before its first evaluation, the
    epoch it diverged in."""
    return run['curve'][-1]['epoch'] if run['curve'] else run['diverged']['epoch']


def summarise(runs: Sequence[dict]) -> List[dict]:
    """Per model: mean and min..max over seeds of the last evaluation and of the best AP.

    A run that diverged (``run['diverged']``) is listed under ``diverged`` with its epoch and
    its best AP before it, not averaged in: its last evaluation is of NaN weights. A run stopped
    at ``--time-limit`` (``run['stopped']``) is listed under ``stopped`` with the last epoch it
    evaluated and its scores there, not averaged in: it did not train the full budget. A model
    with no run of the full budget has no figures (None)."""
    by_model: Dict[str, List[dict]] = {}
    for run in runs:
        by_model.setdefault(run['model'], []).append(run)
    rows = []
    for model, model_runs in by_model.items():
        trained = [r for r in model_runs if not r.get('diverged') and not r.get('stopped')]
        row = dict(model=model, seeds=[r['seed'] for r in model_runs],
                   epochs=max(_last_epoch(r) for r in trained or model_runs),
                   stopped=[dict(seed=r['seed'], epoch=r['curve'][-1]['epoch'],
                                 AP=r['curve'][-1]['AP'], err_px=r['curve'][-1]['err_px'],
                                 best_AP=r['best_AP'])
                            for r in model_runs if r.get('stopped') and not r.get('diverged')],
                   diverged=[dict(seed=r['seed'], epoch=r['diverged']['epoch'],
                                  non_finite=r['diverged']['non_finite'], best_AP=r['best_AP'])
                             for r in model_runs if r.get('diverged')])
        for name in list(METRIC_KEYS) + ['best_AP', 'minutes']:
            values = [r['curve'][-1][name] if name in METRIC_KEYS else r[name]
                      for r in trained]
            values = [v for v in values if v is not None]
            row[name] = _stat(values) if values else None
        rows.append(row)
    return rows


def _stat(values: List[float]) -> dict:
    """Mean and min..max of ``values`` over the defined ones: a run whose predictions matched no
    ground truth has no pixel error or PCK (NaN), counted in ``undefined`` instead of turning
    the mean into NaN."""
    defined = [v for v in values if not math.isnan(v)]
    if not defined:
        return dict(mean=math.nan, min=math.nan, max=math.nan, values=values,
                    undefined=len(values))
    return dict(mean=statistics.fmean(defined), min=min(defined), max=max(defined),
                values=values, undefined=len(values) - len(defined))


def _cell(stat: Optional[dict], digits: int = 3) -> str:
    if stat is None:
        return 'n/a'
    undefined = stat.get('undefined', 0)
    note = f' [{undefined} of {len(stat["values"])} matched nothing]' if undefined else ''
    if len(stat['values']) - undefined <= 1:
        return f'{stat["mean"]:.{digits}f}{note}'
    return (f'{stat["mean"]:.{digits}f} ({stat["min"]:.{digits}f}-{stat["max"]:.{digits}f})'
            f'{note}')


def _stopped_cell(stopped: Sequence[dict]) -> str:
    return ', '.join(f'seed {s["seed"]} at epoch {s["epoch"]} (AP {s["AP"]:.3f})'
                     for s in stopped) or '-'


def _diverged_cell(diverged: Sequence[dict]) -> str:
    return ', '.join(f'seed {d["seed"]} at epoch {d["epoch"]}' for d in diverged) or '-'


def table_rows(summary: Sequence[dict]) -> List[list]:
    return [[row['model'], len(row['seeds']), row['epochs'], _cell(row['AP']), _cell(row['AP50']),
             _cell(row['AP75']), _cell(row['box_mAP']), _cell(row['err_px'], 1),
             _cell(row['pck']), _cell(row['best_AP']), _cell(row['minutes'], 1),
             _stopped_cell(row.get('stopped', ())), _diverged_cell(row['diverged'])]
            for row in summary]


def plot_curves(runs: Sequence[dict], path: Path, title: str) -> None:
    """OKS AP per epoch, one line per run, one colour per model."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(r['model'] for r in runs))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, model in enumerate(models):
        for j, run in enumerate(r for r in runs if r['model'] == model):
            ax.plot([p['epoch'] for p in run['curve']], [p['AP'] for p in run['curve']],
                    color=f'C{i}', marker='o', ms=3, alpha=0.85,
                    label=model if j == 0 else None)
    ax.set_xlabel('epoch')
    ax.set_ylabel('OKS AP (val)')
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    data = parser.add_argument_group('data (a YOLO layout, or COCO json)')
    data.add_argument('--data-root', default=str(REPO_ROOT.parent / 'shared/data/tiger_pose'))
    data.add_argument('--data-yaml', default='', help='data yaml under --data-root')
    data.add_argument('--train-images', default='train/images')
    data.add_argument('--val-images', default='val/images')
    data.add_argument('--coco-train', help='COCO keypoint json of the training split')
    data.add_argument('--coco-val', help='COCO keypoint json of the validation split')
    data.add_argument('--img-prefix', help='image folder of the COCO json file names')
    data.add_argument('--metainfo', default=str(REPO_ROOT / 'configs/_base_/datasets/tiger.py'),
                      help='MMPose metainfo file: keypoint names, flip pairs, sigmas')
    parser.add_argument('--models', nargs='+', default=['ours', 'yoloxpose'],
                        help="'ours[@CONFIG][+variant...]', 'yoloxpose[+variant...]' "
                        "and/or 'yolov7pose'")
    parser.add_argument('--yolov7-root', help='checkout of the original pose branch '
                        '(for yolov7pose)')
    parser.add_argument('--arch', choices=sorted(ARCHS), default='tiny',
                        help="the models' size: ours' default config, YOLOX-Pose's config, "
                        'the --yolov7-cfg it takes (ARCHS)')
    # --yolov7-tiny-cfg: its name before --arch, in the commands BENCHMARKS.md records
    parser.add_argument('--yolov7-cfg', '--yolov7-tiny-cfg', dest='yolov7_cfg',
                        help="the original main branch's cfg/training/yolov7-tiny.yaml "
                        '(--arch tiny) or yolov7.yaml (--arch l), for yolov7pose')
    parser.add_argument('--ours-config', default=None,
                        help=f"default: {ARCHS['tiny']['ours']} (--arch tiny), "
                        f"{ARCHS['l']['ours']} (--arch l)")
    parser.add_argument('--epochs', type=int, default=90)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--img-size', type=int, default=256)
    parser.add_argument('--val-interval', type=int, default=10)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--workers', type=int, default=1, help='DataLoader workers per run')
    parser.add_argument('--jobs', type=int, default=1, help='runs trained at the same time')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch / OpenMP threads per run (default: cores / jobs)')
    parser.add_argument('--time-limit', type=float, default=None, metavar='MINUTES',
                        help='stop every run still training after this many minutes of the '
                        "bench's wall time; report them as stopped at their last evaluation")
    parser.add_argument('--out-dir', default='bench_results/accuracy')
    parser.add_argument('--summarise-only', action='store_true',
                        help='re-read finished runs in --out-dir instead of training')
    args = parser.parse_args(argv)
    if bool(args.coco_train) != bool(args.coco_val) or (args.coco_train and not args.img_prefix):
        parser.error('COCO data needs --coco-train, --coco-val and --img-prefix')
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    if not args.summarise_only:
        check_models(args)
    started = utc_now()
    out_dir = Path(args.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info(('numpy', 'torch', 'mmcv', 'mmengine', 'mmdet', 'mmpose'))
    gt_file = val_ground_truth(args, out_dir)
    threads = args.threads or max(1, (machine['usable_cpus'] or 1) // args.jobs)
    queue = [(spec, seed) for seed in args.seeds for spec in args.models]
    runs, running, failed = [], [], []
    deadline = time.time() + 60 * args.time_limit if args.time_limit else None
    # a SIGTERM (a `timeout` around the bench) ends it through the except below, which ends the
    # runs' process groups too: they are not in the bench's
    on_sigterm = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        while queue or running:
            while queue and len(running) < args.jobs and not args.summarise_only:
                running.append(run_one(*queue.pop(0), args, gt_file, out_dir, threads))
            if args.summarise_only:
                running = [_Done(spec, seed, out_dir) for spec, seed in queue]
                queue = []
            time.sleep(0 if args.summarise_only else 5)
            if deadline is not None and time.time() > deadline:
                for spec, seed in queue:
                    failed.append(f'{spec} seed {seed}: not started, --time-limit '
                                  f'{args.time_limit:g} min reached')
                queue = []
                scoring = []  # the original's saved epochs, scored at once for every seed
                for proc in running:
                    if proc.poll() is None:
                        print(f'[accuracy] {proc.run[0]} seed {proc.run[1]}: stopped at '
                              f'--time-limit {args.time_limit:g} min', flush=True)
                        scoring.append(stop_run(proc, args, gt_file))
                for scorer in filter(None, scoring):
                    scorer.wait()
            for proc in [p for p in running if p.poll() is not None]:
                running.remove(proc)
                if getattr(proc, 'log', None):
                    proc.log.close()
                run, failure = finished_run(proc)
                if failure:
                    failed.append(failure)
                    continue
                runs.append(run)
                diverged, stopped, curve = run['diverged'], run['stopped'], run['curve']
                print(f'[accuracy] {run["model"]} seed {run["seed"]}: ' + (
                    f'diverged at epoch {diverged["epoch"]} (non-finite '
                    f'{diverged["non_finite"]})' if diverged else
                    f'{"stopped at epoch %d: " % curve[-1]["epoch"] if stopped else ""}'
                    f'last OKS AP {curve[-1]["AP"]:.3f}, {curve[-1]["err_px"]:.1f} px'),
                    flush=True)
    except BaseException:  # Ctrl-C or an error: the runs' own process groups do not see it
        for proc in running:
            if getattr(proc, 'pid', None) and proc.poll() is None:
                kill_group(proc, grace=5.)
        raise
    finally:
        signal.signal(signal.SIGTERM, on_sigterm)
    if not runs:
        raise SystemExit('no run finished:\n' + '\n'.join(failed))
    summary = summarise(runs)
    title = (f'{Path(args.coco_val or args.data_root).name}: {args.arch}, {args.epochs} epochs, '
             f'batch {args.batch}, {args.img_size}px, from scratch')
    print_table(HEADERS, table_rows(summary), title=title)
    plot_curves(runs, out_dir / 'oks_ap_per_epoch.png', title)
    settings = {k: v for k, v in vars(args).items()}
    payload = result_payload('accuracy', started, machine, settings, revision=start_revision(),
                             ground_truth=gt_file, summary=summary, runs=runs, failed=failed)
    write_json(str(out_dir / 'accuracy.json'), payload)
    for line in failed:
        print(f'[accuracy] FAILED {line}', file=sys.stderr)
    return payload


def finished_run(proc) -> Tuple[Optional[dict], Optional[str]]:
    """(the run's record, None), or (None, why it failed), for a run whose process ended.

    A run that stopped because its weights turned non-finite (``diverged.json`` in its work
    dir: the plugin's ``DivergenceCheckHook`` on ours and YOLOX-Pose, which then exit non-zero,
    and :func:`yolov7_pose_peer.checkpoint_saver` on the original) is a diverged run with the
    curve it evaluated before, not a failure; so is a run the bench stopped at ``--time-limit``
    (``stopped.json``), unless it had evaluated nothing yet."""
    spec, seed, work_dir = proc.run
    diverged, stopped = read_divergence(work_dir), read_stopped(work_dir)
    if proc.returncode != 0 and diverged is None and stopped is None:
        return None, f'{spec} seed {seed}: exit {proc.returncode}, see {work_dir / "train.log"}'
    before_evaluating = None if stopped is None else (
        f'{spec} seed {seed}: stopped at {stopped["reason"]} before its first evaluation, see '
        f'{work_dir / "train.log"}')
    try:
        curve = read_curve(work_dir)
    except RuntimeError as error:  # --summarise-only: a run that was never made
        return None, before_evaluating or f'{spec} seed {seed}: {error}'
    if not curve and diverged is None:
        return None, before_evaluating or f'{spec} seed {seed}: no evaluation in {work_dir}'
    minutes = (time.time() - proc.started) / 60 if proc.started else None
    return dict(model=spec, seed=seed, work_dir=str(work_dir), curve=curve,
                best_AP=max((p['AP'] for p in curve), default=None), minutes=minutes,
                diverged=diverged, stopped=stopped), None


class _Done:
    """A finished run found on disk (``--summarise-only``)."""

    def __init__(self, spec: str, seed: int, out_dir: Path):
        self.run = (spec, seed, out_dir / _run_name(spec, seed))
        self.returncode = 0
        self.started = None

    def poll(self) -> int:
        return 0


if __name__ == '__main__':
    main()
