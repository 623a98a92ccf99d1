"""Training-step speed: images/s of forward + loss (with assignment) + backward + optimizer step,
ours beside the original YOLOv7 and MMPose's YOLOX-Pose, on CPU and on CUDA.

What is timed is the model's part of a training iteration, as the original's figures in
``../shared/gpu-wheels/README.md`` were measured: a fixed batch already on the device
(``--objects`` random boxes per image, 1 class; for keypoint models ``--num-keypoints`` random
keypoints inside each box), then

* ``ours``: the model a config builds (``turtle_det*.py`` / ``turtle_kpt*.py``), its own
  ``optim_wrapper`` (SGD nesterov, YOLOv7 parameter groups, gradient clipping), the step being
  what MMEngine's ``train_step`` does after the data preprocessor: ``optim_context`` -> ``loss``
  -> ``parse_losses`` -> ``update_params``; fp16/bf16 through MMEngine's ``AmpOptimWrapper``
  (the ``--amp`` switch of ``tools/train.py``). ``--assigners ota v5`` selects the batched
  ``YOLOv7OTAAssigner`` (the configs' default) or ``YOLOv5Assigner``.
* ``yolov7``: the original's ``models.yolo.Model`` from ``cfg/training/yolov7{-tiny,,x}.yaml``,
  ``nc=1``, its ``ComputeLossOTA`` (``ota``) or ``ComputeLoss`` (``v5``) with ``hyp.scratch``'s
  gains scaled as its train.py does, SGD nesterov with its three parameter groups, and its AMP
  step (``autocast`` + ``GradScaler``). Imported from a local checkout given by
  ``--yolov7-root`` (never vendored); without it no comparison. Detection only (the pose
  branch is a fork of an older tree).
* ``yoloxpose``: MMPose's ``yoloxpose_tiny_4xb64-300e_coco-416.py`` model (tiny rows, keypoint
  task, 17 keypoints by default as its COCO config) with its own AdamW ``optim_wrapper``,
  stepped like ours; the backbone's pretrained ``init_cfg`` is dropped (no download).

Within a group (arch, image size, batch, precision, memory format) the implementations take
turns, ``--iters`` steps each per turn, for ``--repeats`` turns (``bench/_common.py``), after
``--warmup`` untimed steps, CUDA synchronised around each turn. Figures are medians over
repeats; ratios (``vs yolov7``: ours over the original with the same assigner, ``vs
yoloxpose``) are medians of per-repeat ratios of wall time. A case that runs out of memory is
recorded as such (a case that fails otherwise, with its error) and the rest go on.

Examples::

    python bench/train_step.py                          # CPU: tiny and l, 256, batch 8, fp32
    python bench/train_step.py --yolov7-root /path/to/yolov7 --devices cuda --archs l \\
        --batches 64 --precisions fp16 --assigners ota v5          # the 5x target row
    python bench/train_step.py --devices cuda --archs l --batches 256 --precisions bf16 \\
        --channels-last on --assigners ota                         # the 2,400 images/s row

The original needs pandas, requests and seaborn at import time (install them outside this
environment, e.g. ``pip install --target DIR``, then ``PYTHONPATH=DIR``).
"""
import argparse
import copy
import gc
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from _common import (REPO_ROOT, import_original, interleaved_timings, machine_info, median,
                     peer_info, print_table, result_payload, utc_now, write_json)

CONFIGS = {
    ('tiny', 'det'): 'turtle_det_tiny.py', ('l', 'det'): 'turtle_det.py',
    ('x', 'det'): 'turtle_det_x.py', ('tiny', 'kpt'): 'turtle_kpt_tiny.py',
    ('l', 'kpt'): 'turtle_kpt.py', ('x', 'kpt'): 'turtle_kpt_x.py',
}
ORIGINAL_CFGS = {'tiny': 'cfg/training/yolov7-tiny.yaml', 'l': 'cfg/training/yolov7.yaml',
                 'x': 'cfg/training/yolov7x.yaml'}
ORIGINAL_HYPS = {'tiny': 'data/hyp.scratch.tiny.yaml', 'l': 'data/hyp.scratch.p5.yaml',
                 'x': 'data/hyp.scratch.p5.yaml'}
YOLOXPOSE_CFG = 'configs/body_2d_keypoint/yoloxpose/coco/yoloxpose_tiny_4xb64-300e_coco-416.py'
DTYPES = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
ASSIGNERS = {'ota': 'YOLOv7OTAAssigner', 'v5': 'YOLOv5Assigner'}
HEADERS = ['device', 'arch', 'size', 'batch', 'prec', 'ch_last', 'impl', 'assigner',
           'ms/step', 'img/s', 'vs yolov7', 'vs yoloxpose', 'peak GiB']


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--devices', nargs='+', choices=('cpu', 'cuda'), default=None,
                        help='default: cpu, and cuda when available')
    parser.add_argument('--archs', nargs='+', choices=('tiny', 'l', 'x'), default=['tiny', 'l'])
    parser.add_argument('--img-sizes', type=int, nargs='+', default=[256])
    parser.add_argument('--batches', type=int, nargs='+', default=[8])
    parser.add_argument('--precisions', nargs='+', choices=tuple(DTYPES), default=['fp32'])
    parser.add_argument('--channels-last', nargs='+', choices=('off', 'on'), default=['off'])
    parser.add_argument('--assigners', nargs='+', choices=tuple(ASSIGNERS), default=['ota'])
    parser.add_argument('--tasks', nargs='+', choices=('det', 'kpt'), default=['det', 'kpt'],
                        help='our detection and/or keypoint models')
    parser.add_argument('--impls', nargs='+', choices=('ours', 'yolov7', 'yoloxpose'),
                        default=['ours', 'yolov7', 'yoloxpose'],
                        help='peers run only where they apply and are available')
    parser.add_argument('--objects', type=int, default=2, help='ground-truth boxes per image')
    parser.add_argument('--num-keypoints', type=int, default=17,
                        help='keypoints of the keypoint models (17: COCO, as YOLOX-Pose)')
    parser.add_argument('--iters', type=int, default=None,
                        help='timed steps per turn (default 10 on CUDA, 2 on CPU)')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed steps first (default 5 on CUDA, 1 on CPU)')
    parser.add_argument('--no-clip', action='store_true',
                        help="also time ours without the config's gradient clipping "
                        '(`ours_noclip`; the original clips nothing)')
    parser.add_argument('--compile', action='store_true',
                        help='also time ours with backbone, neck and head module compiled by '
                        'torch.compile (the loss stays eager)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--yolov7-root', default=None,
                        help='local checkout of the original YOLOv7 (main branch)')
    parser.add_argument('--breakdown', choices=('host', 'sync'), default=None,
                        help='instead of comparing implementations, time the stages of our '
                        'step (data preprocessor ... EMA update): `host` = host time of each '
                        'stage (the device runs behind; the wait is its own stage), `sync` = '
                        'synchronised after each stage (device time included); medians of '
                        '--iters steps (default 20) after --warmup (default 3), and the host '
                        'syncs of one step (turtle_plugin.testing.HostSyncCounter)')
    parser.add_argument('--ema-type', default=None,
                        help="--breakdown: the EMA model to update (default: the config's "
                        "EMAHook ema_type), e.g. mmdet.ExpMomentumEMA")
    parser.add_argument('--out', default='bench_results/train_step.json')
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------- batch
def make_batch(batch: int, img_size: int, objects: int, num_keypoints: int, seed: int = 0
               ) -> Dict[str, torch.Tensor]:
    """Random pixels and ``objects`` random boxes per image (side 8-60% of the image), with
    ``num_keypoints`` keypoints uniformly inside each box; all in network-input pixels."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, img_size, img_size, generator=gen)
    wh = (0.08 + 0.52 * torch.rand(batch, objects, 2, generator=gen)) * img_size
    centre = wh / 2 + torch.rand(batch, objects, 2, generator=gen) * (img_size - wh)
    boxes = torch.cat([centre - wh / 2, centre + wh / 2], -1)
    kpts = boxes[..., None, :2] + torch.rand(batch, objects, num_keypoints, 2,
                                             generator=gen) * wh[..., None, :]
    return dict(images=images, boxes=boxes, keypoints=kpts)


def det_samples(data: Dict[str, torch.Tensor], device: str) -> list:
    """MMDetection ``DetDataSample``s holding the batch's ground truths."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    size = data['images'].shape[-1]
    samples = []
    for boxes in data['boxes'].to(device):
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             batch_input_shape=(size, size)))
        sample.gt_instances = InstanceData(
            bboxes=boxes, labels=torch.zeros(len(boxes), dtype=torch.long, device=device))
        samples.append(sample)
    return samples


def pose_samples(data: Dict[str, torch.Tensor], device: str) -> list:
    """MMPose ``PoseDataSample``s as ``GenerateTarget(YOLOXPoseAnnotationProcessor)`` +
    ``PackPoseInputs`` make them (both our keypoint head and YOLOX-Pose's read these)."""
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample
    size = data['images'].shape[-1]
    samples = []
    for boxes, kpts in zip(data['boxes'].to(device), data['keypoints'].to(device)):
        sample = PoseDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size), input_size=(size, size),
            input_center=(size / 2, size / 2), input_scale=(size, size),
            batch_input_shape=(size, size)))
        sample.gt_instance_labels = InstanceData(
            bboxes=boxes, labels=torch.zeros(len(boxes), dtype=torch.long, device=device),
            keypoints=kpts, keypoints_visible=torch.ones(kpts.shape[:2], device=device),
            areas=(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        samples.append(sample)
    return samples


# --------------------------------------------------------------------------------- ours
def _optim_wrapper_cfg(cfg_optim: dict, precision: str) -> dict:
    cfg_optim = copy.deepcopy(cfg_optim)
    if precision != 'fp32':  # what tools/train.py --amp does, with the chosen dtype
        cfg_optim['type'] = 'AmpOptimWrapper'
        cfg_optim['dtype'] = {'fp16': 'float16', 'bf16': 'bfloat16'}[precision]
        cfg_optim.setdefault('loss_scale', 'dynamic')
    return cfg_optim


def mmengine_step(model, optim_wrapper, inputs: torch.Tensor, samples: list) -> Callable:
    """MMEngine's ``train_step`` after the data preprocessor."""

    def step() -> None:
        with optim_wrapper.optim_context(model):
            losses = model.loss(inputs, samples)
        parsed, _ = model.parse_losses(losses)
        optim_wrapper.update_params(parsed)

    return step


def compile_network(model) -> None:
    """``torch.compile`` the network modules in place (the loss and assignment stay eager)."""
    for name in ('backbone', 'neck'):
        getattr(model, name).compile()
    head = model.bbox_head if hasattr(model, 'bbox_head') else model.head
    head.head_module.compile()


def build_ours(task: str, arch: str, assigner: str, num_keypoints: int, device: str,
               precision: str, channels_last: bool, data: dict, compiled: bool,
               clip: bool = True) -> Callable:
    """The training step of one of our configs, random init."""
    model, optim_wrapper = build_ours_parts(task, arch, assigner, num_keypoints, device,
                                            precision, channels_last, data, compiled, clip)
    inputs = _inputs(data, device, channels_last)
    samples = det_samples(data, device) if task == 'det' else pose_samples(data, device)
    return mmengine_step(model, optim_wrapper, inputs, samples)


def build_ours_parts(task: str, arch: str, assigner: str, num_keypoints: int, device: str,
                     precision: str, channels_last: bool, data: dict, compiled: bool = False,
                     clip: bool = True) -> tuple:
    """The model (train mode, random init) and ``optim_wrapper`` of one of our configs."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    import turtle_plugin  # noqa: F401  (registers the modules)
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / CONFIGS[(arch, task)]))
    head = cfg.model.bbox_head if task == 'det' else cfg.model.head
    head.assigner = dict(type=ASSIGNERS[assigner])
    if task == 'kpt' and num_keypoints != head.head_module.num_keypoints:
        from mmpose.datasets.datasets.utils import parse_pose_metainfo
        coco = parse_pose_metainfo(dict(from_file='configs/_base_/datasets/coco.py'))
        if num_keypoints != 17:
            raise SystemExit(f'--num-keypoints {num_keypoints}: the bench has sigmas for the '
                             f'configs\' own keypoints and for COCO\'s 17 only')
        head.head_module.num_keypoints = num_keypoints
        head.kpt_sigmas = coco['sigmas'].tolist()
    img_size = data['images'].shape[-1]
    head.img_size = img_size
    scope = 'mmdet' if task == 'det' else 'mmpose'
    with DefaultScope.overwrite_default_scope(scope):
        from mmengine.registry import MODELS
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).to(device).train()
        optim_cfg = copy.deepcopy(cfg.optim_wrapper)
        optim_cfg.paramwise_cfg['batch_size_per_gpu'] = data['images'].shape[0]
        if not clip:
            optim_cfg.pop('clip_grad', None)
        optim_wrapper = build_optim_wrapper(model, _optim_wrapper_cfg(optim_cfg, precision))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compiled:
        compile_network(model)
    return model, optim_wrapper


def build_yoloxpose(num_keypoints: int, device: str, precision: str, channels_last: bool,
                    data: dict) -> Callable:
    """MMPose's YOLOX-Pose-tiny training step with its own optimizer settings."""
    import mmpose
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmpose.registry import MODELS
    if num_keypoints != 17:
        raise SystemExit('YOLOX-Pose is timed with its COCO config: --num-keypoints 17')
    root = Path(mmpose.__file__).parent / '.mim'
    cfg = Config.fromfile(str(root / YOLOXPOSE_CFG))
    cfg.model.backbone.init_cfg = None  # a pretrained download; speed needs no weights
    cfg.model.data_preprocessor.batch_augments = None
    cfg.optim_wrapper.pop('paramwise_cfg', None)  # bypass_duplicate etc.: same params anyway
    with DefaultScope.overwrite_default_scope('mmpose'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).to(device).train()
        optim_wrapper = build_optim_wrapper(model, _optim_wrapper_cfg(cfg.optim_wrapper,
                                                                      precision))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return mmengine_step(model, optim_wrapper, _inputs(data, device, channels_last),
                         pose_samples(data, device))


def _inputs(data: dict, device: str, channels_last: bool) -> torch.Tensor:
    images = data['images'].to(device)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


# ----------------------------------------------------------------------------- original
def build_original(modules, root: Path, arch: str, assigner: str, device: str,
                   precision: str, channels_last: bool, data: dict) -> Callable:
    """The original's training step, as its train.py runs it (without data loading)."""
    import yaml
    yolo, loss_module = modules
    hyp = yaml.safe_load((root / ORIGINAL_HYPS[arch]).read_text())
    torch.manual_seed(0)
    model = yolo.Model(str(root / ORIGINAL_CFGS[arch]), ch=3, nc=1).to(device).train()
    batch, _, img_size, _ = data['images'].shape
    nl = model.model[-1].nl
    hyp['box'] *= 3. / nl  # as its train.py
    hyp['cls'] *= 1 / 80. * 3. / nl
    hyp['obj'] *= (img_size / 640) ** 2 * 3. / nl
    model.nc, model.hyp, model.gr = 1, hyp, 1.0
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    # its groups: BatchNorm weights (and implicit knowledge) without decay, weights with decay,
    # biases; decay scaled by batch / 64 as its train.py does for a nominal batch of 64
    no_decay, decay, biases = [], [], []
    for module in model.modules():
        if hasattr(module, 'bias') and isinstance(module.bias, torch.nn.Parameter):
            biases.append(module.bias)
        if isinstance(module, torch.nn.BatchNorm2d):
            no_decay.append(module.weight)
        elif hasattr(module, 'weight') and isinstance(module.weight, torch.nn.Parameter):
            decay.append(module.weight)
        if hasattr(module, 'implicit'):
            no_decay.append(module.implicit)
    optimizer = torch.optim.SGD(no_decay, lr=hyp['lr0'], momentum=hyp['momentum'],
                                nesterov=True)
    accumulate = max(round(64 / batch), 1)
    optimizer.add_param_group({'params': decay,
                               'weight_decay': hyp['weight_decay'] * batch * accumulate / 64})
    optimizer.add_param_group({'params': biases})
    compute = (loss_module.ComputeLossOTA if assigner == 'ota' else loss_module.ComputeLoss)(model)
    scaler = torch.amp.GradScaler(device, enabled=precision == 'fp16')
    dtype = DTYPES[precision]
    imgs = _inputs(data, device, channels_last)
    targets = []  # (image, class, x, y, w, h), normalised
    for i, boxes in enumerate(data['boxes']):
        xywh = torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
        targets.append(torch.cat([torch.full((len(boxes), 1), float(i)),
                                  torch.zeros(len(boxes), 1), xywh / img_size], 1))
    targets = torch.cat(targets).to(device)

    def step() -> None:
        with torch.autocast(device_type=device, dtype=dtype or torch.float32,
                            enabled=dtype is not None):
            pred = model(imgs)
            if assigner == 'ota':
                loss, _ = compute(pred, targets, imgs)
            else:
                loss, _ = compute(pred, targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()

    return step


# ---------------------------------------------------------------------------- breakdown
STAGES = ('data_preprocessor', 'backbone+neck', 'head convs', 'assignment', 'loss',
          'parse_losses', 'backward', 'optimizer step', 'zero_grad', 'ema update', 'device wait')


class StageClock:
    """Host seconds per named stage of one step: ``with clock('loss'):``, or a method of an
    object wrapped in place (:meth:`wrap`) so that stages inside MMEngine's calls are split out.
    Stages nest: a wrapped call inside a timed block is subtracted from the block. With
    ``sync`` each stage ends with ``torch.cuda.synchronize()`` (device time included). ``clock``
    is ``time.perf_counter`` (wall) or ``time.thread_time`` (this thread's CPU time: steadier
    on a shared CPU, where wall time includes waiting for a core)."""

    def __init__(self, sync: bool = False, clock: Callable[[], float] = time.perf_counter):
        self.sync = sync and torch.cuda.is_available()
        self.clock = clock
        self.seconds: Dict[str, float] = {}
        self._stack: List[float] = []  # time spent in nested stages, per open stage

    def __call__(self, stage: str):
        clock = self

        class _Stage:

            def __enter__(self):
                clock._stack.append(0.0)
                self.start = clock.clock()

            def __exit__(self, *exc):
                if clock.sync:
                    torch.cuda.synchronize()
                spent = clock.clock() - self.start
                nested = clock._stack.pop()
                clock.seconds[stage] = clock.seconds.get(stage, 0.0) + spent - nested
                if clock._stack:
                    clock._stack[-1] += spent

        return _Stage()

    def wrap(self, owner, method: str, stage: str) -> None:
        inner = getattr(owner, method)

        def timed(*args, **kwargs):
            with self(stage):
                return inner(*args, **kwargs)

        setattr(owner, method, timed)


def build_breakdown(task: str, arch: str, assigner: str, args, device: str, precision: str,
                    channels_last: bool, data: dict, clock: StageClock) -> Tuple[Callable, Callable]:
    """Our step split into the stages of :data:`STAGES`: MMEngine's ``train_step`` from a
    batch on the host (``data_preprocessor`` moves it to the device), then the EMA update
    the configs' ``EMAHook`` makes after each iteration. Returns ``step()`` and ``one_loss()``
    (forward and loss only, for counting host syncs)."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    model, optim_wrapper = build_ours_parts(task, arch, assigner, args.num_keypoints, device,
                                            precision, channels_last, data)
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / CONFIGS[(arch, task)]))
    ema_cfg = dict(cfg.default_hooks.ema)
    ema_cfg = {k: v for k, v in ema_cfg.items() if k not in ('type', 'priority', 'begin_iter')}
    ema_cfg['type'] = ema_cfg.pop('ema_type')
    if args.ema_type:
        ema_cfg['type'] = args.ema_type
    with DefaultScope.overwrite_default_scope('mmdet' if task == 'det' else 'mmpose'):
        ema = MODELS.build(dict(ema_cfg, model=model))
    images = (data['images'] * 255).round().to(torch.uint8)
    samples = det_samples(data, 'cpu') if task == 'det' else pose_samples(data, 'cpu')
    raw = dict(inputs=list(images), data_samples=samples)
    head = model.bbox_head if task == 'det' else model.head
    clock.wrap(model, 'extract_feat', 'backbone+neck')
    clock.wrap(head.head_module, 'forward', 'head convs')
    clock.wrap(head, 'get_targets', 'assignment')

    def step() -> None:
        with optim_wrapper.optim_context(model):
            with clock('data_preprocessor'):
                batch = model.data_preprocessor(raw, True)
            if channels_last:
                batch['inputs'] = batch['inputs'].contiguous(memory_format=torch.channels_last)
            with clock('loss'):
                losses = model(**batch, mode='loss')
        with clock('parse_losses'):
            parsed, _ = model.parse_losses(losses)
        # optim_wrapper.update_params(parsed), stage by stage (no gradient accumulation)
        with clock('backward'):
            optim_wrapper.backward(optim_wrapper.scale_loss(parsed))
        with clock('optimizer step'):
            optim_wrapper.step()
        with clock('zero_grad'):
            optim_wrapper.zero_grad()
        with clock('ema update'):
            ema.update_parameters(model)
        with clock('device wait'):
            synchronize(device)

    def one_loss() -> None:
        with optim_wrapper.optim_context(model):
            losses = model(**model.data_preprocessor(raw, True), mode='loss')
        parsed, _ = model.parse_losses(losses)
        optim_wrapper.update_params(parsed)

    return step, one_loss


def run_breakdown(args, devices: Sequence[str], results: List[dict]) -> List[list]:
    """Per-stage host time of our step (medians over steps), one row per case."""
    from turtle_plugin.testing import HostSyncCounter
    rows = []
    for device, arch, img_size, batch, precision, cl, task, assigner in (
            (d, a, s, b, p, c, t, g) for d in devices for a in args.archs
            for s in args.img_sizes for b in args.batches for p in args.precisions
            for c in args.channels_last for t in args.tasks for g in args.assigners):
        if device == 'cpu' and precision != 'fp32':
            continue
        data = make_batch(batch, img_size, args.objects, args.num_keypoints)
        # CPU: the thread's CPU time (a shared machine); CUDA: wall time on the host
        clock = StageClock(sync=args.breakdown == 'sync',
                           clock=time.thread_time if device == 'cpu' else time.perf_counter)
        step, one_loss = build_breakdown(task, arch, assigner, args, device, precision,
                                         cl == 'on', data, clock)
        for _ in range(args.warmup if args.warmup is not None else 3):
            step()
        with HostSyncCounter() as syncs:  # on CPU: what would synchronise on CUDA
            one_loss()
        per_stage: Dict[str, List[float]] = {stage: [] for stage in STAGES}
        totals = []
        for _ in range(args.iters or 20):
            clock.seconds = {}
            start = clock.clock()
            step()
            totals.append(clock.clock() - start)
            for stage in STAGES:
                per_stage[stage].append(clock.seconds.get(stage, 0.0))
        medians = {stage: 1e3 * median(v) for stage, v in per_stage.items()}
        # 'loss' holds what model.loss spends outside the wrapped stages: gts packing, losses
        results.append(dict(device=device, arch=arch, img_size=img_size, batch=batch,
                            precision=precision, channels_last=cl == 'on', task=task,
                            ema_type=args.ema_type or 'config',
                            assigner=assigner, mode=args.breakdown, ms_median=medians,
                            clock='thread CPU time' if device == 'cpu' else 'wall',
                            ms_step_median=1e3 * median(totals), host_syncs=len(syncs),
                            host_sync_sites=[str(s) for s in syncs.syncs]))
        rows.append([device, arch, img_size, batch, precision, cl, task, assigner]
                    + [medians[s] for s in STAGES] + [1e3 * median(totals), len(syncs)])
        print(syncs.report(), flush=True)
    return rows


# ------------------------------------------------------------------------------- timing
def synchronize(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def timed_case(step: Callable, device: str, iters: int) -> Callable:
    """A case for :func:`interleaved_timings`: ``iters`` steps, synchronised at both ends."""

    def case(repeat: int, chunk: Sequence[int]) -> None:
        synchronize(device)
        for _ in chunk:
            for _ in range(iters):
                step()
        synchronize(device)

    return case


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or 'out of memory' in str(error).lower()


def run_group(device: str, arch: str, img_size: int, batch: int, precision: str,
              channels_last: bool, args, original, results: List[dict]) -> List[list]:
    """Build every applicable case of one group, time them taking turns, summarise."""
    iters = args.iters or (10 if device == 'cuda' else 2)
    warmup = args.warmup if args.warmup is not None else (5 if device == 'cuda' else 1)
    data = make_batch(batch, img_size, args.objects, args.num_keypoints)
    builders: Dict[Tuple[str, str, str], Callable[[], Callable]] = {}
    # (name, compiled, clip): ours as configured, and the variants asked for
    variants = [('ours', False, True)] + [('ours_noclip', False, False)] * args.no_clip \
        + [('ours_compiled', True, True)] * args.compile
    for assigner in args.assigners:
        if 'ours' in args.impls:
            for task in args.tasks:
                for impl, compiled, clip in variants:
                    builders[(impl, task, assigner)] = (
                        lambda t=task, a=assigner, c=compiled, k=clip: build_ours(
                            t, arch, a, args.num_keypoints, device, precision, channels_last,
                            data, c, clip=k))
        if original is not None and 'yolov7' in args.impls:
            builders[('yolov7', 'det', assigner)] = (
                lambda a=assigner: build_original(original[0], original[1], arch, a, device,
                                                  precision, channels_last, data))
    if arch == 'tiny' and 'kpt' in args.tasks and 'yoloxpose' in args.impls:
        builders[('yoloxpose', 'kpt', 'simota')] = lambda: build_yoloxpose(
            args.num_keypoints, device, precision, channels_last, data)

    cases, failed = {}, {}
    for key, build in builders.items():
        try:
            step = build()
            for _ in range(warmup):
                step()
            synchronize(device)
            cases[key] = timed_case(step, device, iters)
        except Exception as e:  # noqa: B902  (one broken case must not lose the others)
            failed[key] = 'out of memory' if _is_oom(e) else f'{type(e).__name__}: {e}'
            if not _is_oom(e):
                traceback.print_exc()
            gc.collect()
            if device == 'cuda':
                torch.cuda.empty_cache()
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    names = {f'{impl}|{task}|{assigner}': case for (impl, task, assigner), case in cases.items()}
    seconds = interleaved_timings(names, [0], args.repeats, chunk_size=1,
                                  clocks={'wall': time.perf_counter}) if names else {}
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == 'cuda' else None

    per_step = {name: [s / iters for s in by['wall']] for name, by in seconds.items()}

    def ratio(name: str, peer: Optional[str]) -> Optional[float]:
        if peer is None or peer not in per_step or peer == name:
            return None
        # images/s ratio ours / peer = time ratio peer / ours
        return median([p / o for o, p in zip(per_step[name], per_step[peer])])

    block = []
    group = dict(device=device, arch=arch, img_size=img_size, batch=batch, precision=precision,
                 channels_last=channels_last, iters_per_turn=iters, warmup=warmup,
                 repeats=args.repeats, objects_per_image=args.objects)
    for key, error in failed.items():
        results.append(dict(group, impl=key[0], task=key[1], assigner=key[2], error=error))
        block.append([device, arch, img_size, batch, precision, 'on' if channels_last else 'off',
                      f'{key[0]} {key[1]}', key[2], error[:60], None, None, None, None])
    for name, values in per_step.items():
        impl, task, assigner = name.split('|')
        vs_yolov7 = (ratio(name, f'yolov7|det|{assigner}')
                     if impl.startswith('ours') and task == 'det' else None)
        vs_yoloxpose = (ratio(name, 'yoloxpose|kpt|simota')
                        if impl.startswith('ours') and task == 'kpt' else None)
        step_s = median(values)
        entry = dict(group, impl=impl, task=task, assigner=assigner, ms_per_step=1e3 * step_s,
                     images_per_s=batch / step_s, ratio_vs_yolov7=vs_yolov7,
                     ratio_vs_yoloxpose=vs_yoloxpose, peak_cuda_gib=peak,
                     per_repeat_s_per_step=values)
        results.append(entry)
        block.append([device, arch, img_size, batch, precision, 'on' if channels_last else 'off',
                      f'{impl} {task}', assigner, entry['ms_per_step'], entry['images_per_s'],
                      None if vs_yolov7 is None else f'{vs_yolov7:.2f}x',
                      None if vs_yoloxpose is None else f'{vs_yoloxpose:.2f}x',
                      None if peak is None else round(peak, 1)])
    del cases, names, builders
    gc.collect()
    if device == 'cuda':
        torch.cuda.empty_cache()
    return block


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = utc_now()
    machine = machine_info(('numpy', 'torch', 'mmcv', 'mmengine', 'mmdet', 'mmpose'))
    devices = args.devices or (['cpu'] + (['cuda'] if torch.cuda.is_available() else []))
    if 'cuda' in devices and not torch.cuda.is_available():
        raise SystemExit('--devices cuda: torch sees no CUDA device')
    if 'cuda' in devices:
        machine['gpu'] = torch.cuda.get_device_name()
        torch.backends.cudnn.benchmark = True  # as YOLOv7's train.py (fixed input size)
    print(f"{machine['cpu']}, {machine['usable_cpus']} usable CPUs, load average "
          f"{machine['load_average']}, torch threads {torch.get_num_threads()}"
          + (f", {machine['gpu']}" if 'gpu' in machine else ''), flush=True)
    root = Path(args.yolov7_root) if args.yolov7_root else None
    original = None
    if root is None or not (root / 'models' / 'yolo.py').is_file():
        print(f'no YOLOv7 checkout at {root}: no comparison with the original')
    else:
        original = (import_original(root, 'models.yolo', 'utils.loss'), root)

    results, rows = [], []
    if args.breakdown:
        headers = ['device', 'arch', 'size', 'batch', 'prec', 'ch_last', 'task', 'assigner',
                   *STAGES, 'step ms', 'syncs']
        rows = run_breakdown(args, devices, results)
        payload = result_payload('train_step_breakdown', started, machine,
                                 dict(vars(args), torch_threads=torch.get_num_threads(),
                                      devices=devices), results=results)
        print_table(headers, rows, title=f'training step by stage, ms ({args.breakdown} '
                    'time; CPU: thread CPU time, CUDA: wall), medians over steps')
        print(f'\nwritten to {write_json(args.out, payload)}')
        return payload
    for device in devices:
        for arch in args.archs:
            for img_size in args.img_sizes:
                for batch in args.batches:
                    for precision in args.precisions:
                        if device == 'cpu' and precision != 'fp32':
                            print(f'skipping {precision} on CPU: MMEngine\'s AmpOptimWrapper '
                                  'needs an accelerator')
                            continue
                        for cl in args.channels_last:
                            block = run_group(device, arch, img_size, batch, precision,
                                              cl == 'on', args, original, results)
                            print_table(HEADERS, block)
                            rows += block

    payload = result_payload(
        'train_step', started, machine,
        dict(vars(args), torch_threads=torch.get_num_threads(), devices=devices),
        original=peer_info(root, original is not None, configs=ORIGINAL_CFGS), results=results)
    print_table(HEADERS, rows, title='training step (forward + loss + backward + optimizer, '
                'batch on the device); medians of repeats; "vs" = our images/s over the '
                "peer's, median of per-repeat ratios")
    print(f'\nwritten to {write_json(args.out, payload)}')
    return payload


if __name__ == '__main__':
    main()
