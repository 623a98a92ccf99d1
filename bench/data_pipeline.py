"""Training data pipeline throughput per CPU worker: turtle_plugin vs the original YOLOv7.

Times, in one process on one core's worth of work (OpenCV and torch single-threaded, as in a
DataLoader worker), the training pipeline of the tiger-pose keypoint recipe -- load, 4-image
mosaic, random affine, optional MixUp, HSV, flip, target generation and packing -- built from
config dicts, and beside it the original YOLOv7 code imported from a local checkout given by
``--yolov7-root`` (never vendored here; without it only our figures are printed). Prefer the
``pose`` branch of WongKinYiu/yolov7, whose ``load_mosaic`` / ``random_perspective`` carry
keypoints (its code hard-codes 17 keypoints, so the 12 tiger keypoints are padded with
unlabelled ``(0, 0)`` entries; it has no ``load_mosaic9``). The ``main`` branch (boxes only,
``load_mosaic9`` one sample in five, which our pipeline then mirrors with ``RandomChoice``) also
works and is reported as such.

Modes, for each ``--img-sizes`` entry, same hyper-parameters on both sides (YOLOv7
``hyp.scratch.p5.yaml``: translate 0.2, scale 0.9, HSV 0.015/0.7/0.4, fliplr 0.5; the main
branch's ``copy_paste`` and ``paste_in`` off; the pose branch draws the zoom from
``U(1 - scale, 1 + scale)``, ours and the main branch from ``U(1 - scale, 1.1 + scale)``):

* ``mosaic_affine``: the original's ``load_mosaic`` (which ends with ``random_perspective``) vs
  our loader + ``KptMosaic`` + ``KptRandomAffine``.
* ``train``: the original's ``LoadImagesAndLabels.__getitem__`` (mosaic 1.0, mixup 0) vs our
  whole pipeline ending in ``GenerateTarget`` + ``PackPoseInputs``.
* ``train_mixup``: the same with mixup 0.15 (``hyp.scratch.p5.yaml``).

Implementations: ``yolov7`` (the original, decoding every image, ``cv2.imread``), ``yolov7_cache``
(its ``cache_images``: resized images held in RAM), ``ours_loadimage`` (our transforms behind
MMPose's ``LoadImage``: the same full-size decode as the original), ``ours`` (``KptLoadImage``:
JPEG decoded at a reduced size when the fit allows) and ``ours_cache`` (``KptLoadImage`` with the
dataset's decoded-image cache). Both caches are filled before timing. Every case runs the same
``--num-images`` dataset indices after ``--warmup`` untimed samples, ``--repeats`` times; within
a repeat the implementations take turns every ``--chunk-size`` samples (each with its own random
streams), so load from other processes hits them alike. Two clocks: process CPU time (the
primary figure: images per CPU-second is what one worker with a core to itself delivers, and
it does not count time spent waiting for a CPU on a shared machine) and wall time. The table
gives medians over the repeats and the medians of the per-repeat ratios. glibc is told to keep
large buffers on the heap (``--malloc steady``), the state a long-running worker settles in;
otherwise page faults on fresh multi-megabyte decode buffers, which depend on what ran before in
the process, swing the figures by up to 45 % on a virtual machine.

Example::

    python bench/data_pipeline.py --yolov7-root /tmp/yolov7 --out bench_results/data_pipeline.json
"""
import argparse
import inspect
import random
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from _common import (REPO_ROOT, import_original, interleaved_timings, machine_info, median,
                     peer_info, print_table, result_payload, steady_malloc, utc_now, write_json)

TIGER_META = REPO_ROOT / 'configs' / '_base_' / 'datasets' / 'tiger.py'
MODES = ('mosaic_affine', 'train', 'train_mixup')
OURS = ('ours_loadimage', 'ours', 'ours_cache')
ORIGINAL = ('yolov7', 'yolov7_cache')
# our implementation -> the original's figure it is compared with
PEERS = {'ours_loadimage': 'yolov7', 'ours': 'yolov7', 'ours_cache': 'yolov7_cache'}
TARGET_RATIO = 1.5
# YOLOv7 hyp.scratch.p5.yaml (mixup set per mode; copy_paste and paste_in, main branch only, off)
HYP = dict(hsv_h=0.015, hsv_s=0.7, hsv_v=0.4, degrees=0.0, translate=0.2, scale=0.9, shear=0.0,
           perspective=0.0, flipud=0.0, fliplr=0.5, mosaic=1.0, mixup=0.0, copy_paste=0.0,
           paste_in=0.0)
MIXUP = {'mosaic_affine': 0.0, 'train': 0.0, 'train_mixup': 0.15}
HEADERS = ['size', 'mode', 'impl', 'img/cpu-s', 'range', 'img/wall-s', 'mixups', 'peer',
           'ratio cpu', 'ratio wall', f'cpu >= {TARGET_RATIO}x']


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=str(REPO_ROOT.parent / 'shared' / 'data' / 'tiger_pose'),
                        help='YOLO keypoint dataset root with train/images and train/labels')
    parser.add_argument('--yolov7-root', default=None,
                        help='local checkout of WongKinYiu/yolov7 (pose branch preferred); '
                        'omitted or missing: no comparison')
    parser.add_argument('--img-sizes', type=int, nargs='+', default=[640, 256])
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES))
    parser.add_argument('--impls', nargs='+', choices=OURS + ORIGINAL,
                        default=list(OURS + ORIGINAL))
    parser.add_argument('--num-images', type=int, default=60,
                        help='timed samples per case and repeat')
    parser.add_argument('--warmup', type=int, default=5, help='untimed samples before timing')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--chunk-size', type=int, default=4,
                        help='samples per turn when the implementations take turns')
    parser.add_argument('--cache-mb', type=float, default=4096.,
                        help='image cache budget of ours_cache')
    parser.add_argument('--malloc', choices=['steady', 'default'], default='steady',
                        help="steady: glibc keeps large buffers on the heap (a long-running "
                        "worker's state, see _common.steady_malloc); default: leave it alone")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='bench_results/data_pipeline.json')
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------ ours
def our_pipeline(mode: str, img_size: int, loader: dict, mosaic9: bool) -> List[dict]:
    """Our training pipeline for ``mode`` (the one of ``tests/test_datasets/test_pipelines``)."""
    scale = (img_size, img_size)
    mosaic4 = dict(type='KptMosaic', img_scale=scale, pad_val=114., pre_transform=[loader])
    if mosaic9 and mode != 'mosaic_affine':  # main-branch __getitem__: load_mosaic9 1 in 5
        mosaic = dict(type='RandomChoice', prob=[0.8, 0.2], transforms=[
            [mosaic4],
            [dict(type='KptMosaic9', img_scale=scale, pad_val=114., pre_transform=[loader])]])
    else:
        mosaic = mosaic4
    affine = dict(type='KptRandomAffine', degrees=HYP['degrees'], translate=HYP['translate'],
                  scale=HYP['scale'], shear=HYP['shear'], perspective=HYP['perspective'],
                  border=(-img_size // 2, -img_size // 2))
    pipeline = [loader, mosaic, affine]
    if mode == 'mosaic_affine':
        return pipeline
    if MIXUP[mode] > 0:
        pipeline.append(dict(type='KptMixUp', prob=MIXUP[mode],
                             pre_transform=[loader, mosaic, affine]))
    return pipeline + [
        dict(type='KptHSVRandomAug', hue=HYP['hsv_h'], saturation=HYP['hsv_s'],
             value=HYP['hsv_v']),
        dict(type='KptRandomFlip', prob=HYP['fliplr'], direction='horizontal'),
        dict(type='KptFilterAnnotations', min_box_size=2.),
        dict(type='mmpose.GenerateTarget',
             encoder=dict(type='mmpose.YOLOXPoseAnnotationProcessor', input_size=scale)),
        dict(type='mmpose.PackPoseInputs'),
    ]


def build_ours(data: Path, impl: str, mode: str, img_size: int, mosaic9: bool,
               cache_mb: float):
    """Our dataset for ``impl``; returns it, the per-sample call and the cache fill seconds."""
    import turtle_plugin  # noqa: F401  registers the plugin, as custom_imports does
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS, TRANSFORMS
    init_default_scope('mmpose')
    if impl == 'ours_loadimage':
        loader = dict(type='LoadImage')
    else:
        loader = dict(type='KptLoadImage', fit_scale=(img_size, img_size))
    cfg = dict(type='YOLOKptDataset', data_root=str(data),
               data_prefix=dict(img='train/images/', label='train/labels/'),
               metainfo=dict(from_file=str(TIGER_META)), use_cache=False,
               pipeline=our_pipeline(mode, img_size, loader, mosaic9))
    if impl == 'ours_cache':
        cfg['image_cache_mb'] = cache_mb
    dataset = DATASETS.build(cfg)
    fill_s = 0.
    if impl == 'ours_cache':  # fill it the way training does, with the pipeline's loader
        load = TRANSFORMS.build(loader)
        start = time.perf_counter()
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            info['dataset'] = dataset
            load(info)
        fill_s = time.perf_counter() - start
    return dataset, dataset.__getitem__, fill_s


# -------------------------------------------------------------------------- original
def import_yolov7(root: Path):
    """The original's ``utils.datasets`` module and whether it carries keypoints."""
    module, = import_original(root, 'utils.datasets', keep_on_path=True)
    kpt = 'kpt_label' in inspect.signature(module.random_perspective).parameters
    return module, kpt


def original_labels(label_files: Sequence[str], kpt: bool, num_keypoints: int) -> List:
    """Labels in the original's in-memory layout: ``cls cx cy w h`` + 17 ``(x, y)`` (pose
    branch, unlabelled padding as zeros) or ``cls cx cy w h`` (main branch)."""
    out = []
    for path in label_files:
        rows = np.loadtxt(path, dtype=np.float32, ndmin=2).reshape(-1, 5 + 2 * num_keypoints)
        if kpt:
            pad = np.zeros((len(rows), 2 * (17 - num_keypoints)), np.float32)
            rows = np.concatenate([rows, pad], axis=1)
        else:
            rows = rows[:, :5].copy()
        out.append(rows)
    return out


def build_original(module, kpt: bool, img_files: List[str], label_files: List[str],
                   num_keypoints: int, impl: str, mode: str, img_size: int):
    """The original's ``LoadImagesAndLabels`` state, set directly (its ``__init__`` parses
    COCO-17 label files only); returns it, the per-sample call and the cache fill seconds."""
    ds = module.LoadImagesAndLabels.__new__(module.LoadImagesAndLabels)
    n = len(img_files)
    ds.img_size, ds.augment, ds.hyp = img_size, True, dict(HYP, mixup=MIXUP[mode])
    ds.image_weights, ds.rect, ds.mosaic, ds.stride = False, False, True, 32
    ds.mosaic_border = [-img_size // 2, -img_size // 2]
    ds.kpt_label, ds.tidl_load = kpt, False
    ds.flip_index = list(range(17))  # tiger flip_idx is the identity
    ds.img_files, ds.label_files = img_files, label_files
    ds.labels = original_labels(label_files, kpt, num_keypoints)
    ds.segments = [[] for _ in range(n)]
    ds.n, ds.indices = n, range(n)
    ds.imgs = [None] * n
    fill_s = 0.
    if impl == 'yolov7_cache':  # what its cache_images=True does in __init__
        ds.img_hw0, ds.img_hw = [None] * n, [None] * n
        start = time.perf_counter()
        for i in range(n):
            ds.imgs[i], ds.img_hw0[i], ds.img_hw[i] = module.load_image(ds, i)
        fill_s = time.perf_counter() - start
    if mode == 'mosaic_affine':
        return ds, lambda i: module.load_mosaic(ds, i), fill_s
    return ds, ds.__getitem__, fill_s


# ------------------------------------------------------------------------------ main
class SeededCase:
    """One implementation under test with its own Python and NumPy random streams.

    The cases take turns chunk by chunk (:func:`interleaved_timings`); each keeps its own
    generator states across turns, reseeded from ``seed + repeat`` at the start of a repeat, so
    the augmentations one case draws do not depend on the others.
    """

    def __init__(self, fn: Callable[[int], object], seed: int):
        self.fn, self.seed, self.repeat = fn, seed, None
        self.states: Tuple = ()
        self.mixups: Dict[int, int] = {}

    def __call__(self, repeat: int, chunk: Sequence[int]) -> None:
        if repeat != self.repeat:
            self.repeat = repeat
            random.seed(self.seed + repeat)
            np.random.seed(self.seed + repeat)
        else:
            random.setstate(self.states[0])
            np.random.set_state(self.states[1])
        # both MixUps draw their ratio with one np.random.beta call: count them, since the
        # number of mixed samples (p = 0.15) differs between the two random streams
        beta = np.random.beta

        def counting_beta(*args, **kwargs):
            self.mixups[repeat] = self.mixups.get(repeat, 0) + 1
            return beta(*args, **kwargs)

        np.random.beta = counting_beta
        try:
            for index in chunk:
                self.fn(index)
        finally:
            np.random.beta = beta
        self.states = (random.getstate(), np.random.get_state())


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    started, machine = utc_now(), machine_info(
        ('numpy', 'opencv-python', 'opencv-python-headless', 'torch', 'mmcv', 'mmpose'))
    print(f"{machine['cpu']}, {machine['usable_cpus']} usable CPUs, load average "
          f"{machine['load_average']}")
    cv2.setNumThreads(0)  # as in a DataLoader worker (MMEngine's and YOLOv7's setting)
    torch.set_num_threads(1)
    malloc = steady_malloc() if args.malloc == 'steady' else False
    data = Path(args.data)
    root = Path(args.yolov7_root) if args.yolov7_root else None
    impls = list(args.impls)
    module, kpt = None, True
    if root is None or not (root / 'utils' / 'datasets.py').is_file():
        print(f'no YOLOv7 checkout at {root}: timing ours only, no comparison')
        impls = [i for i in impls if i in OURS]
    else:
        module, kpt = import_yolov7(root)
        kind = 'pose branch, keypoints' if kpt else 'main branch, boxes only'
        print(f'original: {root} ({kind})')

    results, rows = [], []
    for img_size in args.img_sizes:
        for mode in args.modes:
            cases, fills, reference = {}, {}, None
            for impl in impls:
                if impl in OURS:
                    dataset, fn, fills[impl] = build_ours(data, impl, mode, img_size, not kpt,
                                                          args.cache_mb)
                    if reference is None:
                        reference = dataset
                else:
                    if reference is None:
                        reference = build_ours(data, 'ours_loadimage', mode, img_size, not kpt,
                                               0.)[0]
                    infos = [reference.get_data_info(i) for i in range(len(reference))]
                    img_files = [info['img_path'] for info in infos]
                    label_files = [str(data / 'train' / 'labels' / (Path(p).stem + '.txt'))
                                   for p in img_files]
                    _, fn, fills[impl] = build_original(
                        module, kpt, img_files, label_files,
                        reference.metainfo['num_keypoints'], impl, mode, img_size)
                cases[impl] = SeededCase(fn, args.seed)
            n = len(reference)
            items = [k * n // args.num_images for k in range(args.num_images)]
            for path in Path(data, 'train', 'images').iterdir():  # same page cache for all
                path.read_bytes()
            for case in cases.values():  # warm-up, untimed, with streams no repeat uses
                case(args.repeats, items[:args.warmup])
            seconds = interleaved_timings(cases, items, args.repeats, args.chunk_size)
            # images per second of this process's CPU time (primary: what one worker with a
            # core of its own delivers) and per second of wall time (includes waiting for a CPU)
            speeds = {impl: {clock: [len(items) / t for t in ts] for clock, ts in by.items()}
                      for impl, by in seconds.items()}
            block = []
            for impl, speed in speeds.items():
                mixups = sum(v for r, v in cases[impl].mixups.items() if r < args.repeats)
                entry = dict(img_size=img_size, mode=mode, impl=impl,
                             images_per_cpu_s=median(speed['cpu']),
                             images_per_wall_s=median(speed['wall']),
                             per_repeat=speed, samples=len(items) * args.repeats,
                             mixups=mixups, cache_fill_s=fills[impl] or None)
                peer = PEERS.get(impl) if PEERS.get(impl) in speeds else None
                if peer:
                    for clock in ('cpu', 'wall'):
                        per_repeat = [a / b for a, b in zip(speed[clock], speeds[peer][clock])]
                        entry[f'ratio_{clock}'] = median(per_repeat)
                        entry[f'ratio_{clock}_per_repeat'] = per_repeat
                    entry.update(peer=peer, target=TARGET_RATIO,
                                 met=entry['ratio_cpu'] >= TARGET_RATIO)
                results.append(entry)
                block.append([
                    img_size, mode, impl, median(speed['cpu']),
                    f"{min(speed['cpu']):.4g}-{max(speed['cpu']):.4g}", median(speed['wall']),
                    f'{mixups}/{len(items) * args.repeats}', peer,
                    f"{entry['ratio_cpu']:.2f}" if peer else None,
                    f"{entry['ratio_wall']:.2f}" if peer else None,
                    ('yes' if entry['met'] else 'no') if peer else None])
            print_table(HEADERS, block)
            rows += block

    payload = result_payload(
        'data_pipeline', started, machine,
        dict(vars(args), cv2_threads=cv2.getNumThreads(), torch_threads=torch.get_num_threads(),
             steady_malloc_applied=malloc, hyp=HYP, mixup=MIXUP),
        original=peer_info(root, module is not None, branch_kind='pose' if kpt else 'main'),
        results=results)
    print_table(HEADERS, rows, title='images per CPU-second and per wall-second of one worker '
                '(median of repeats); ratios: median of per-repeat ratios to the peer')
    print(f'\nwritten to {write_json(args.out, payload)}')
    return payload


if __name__ == '__main__':
    main()
