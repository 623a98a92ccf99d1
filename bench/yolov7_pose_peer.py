"""The original YOLOv7 pose branch's own ``train.py`` on a YOLO keypoint dataset, scored by the
accuracy bench's evaluator.

The peer of ``bench/accuracy.py`` (model ``yolov7pose``), also runnable alone. It never vendors
the original: it takes a checkout of the ``pose`` branch of WongKinYiu/yolov7
(``--yolov7-root``) and a model yaml of the main branch, ``cfg/training/yolov7-tiny.yaml`` or
``yolov7.yaml`` (``--model-cfg``; the pose branch ships only the 1280-pixel
``yolov7-w6-pose.yaml``), runs the branch's ``train.py``
with its ``data/hyp.pose.yaml`` in a child process, then predicts the validation images with its
own model, ``letterbox`` and ``non_max_suppression`` and scores them with ``KptBoxCocoMetric``
against the same ground-truth json as every other model of the bench.

The branch hard-codes COCO's 17 person keypoints (label width, ``random_perspective``, decode,
NMS, flip indices, loss sigmas). What this script changes, all at run time and in memory:

* **Labels** are written in its 56-column layout ``class cx cy w h`` + 17 x ``(x, y, v)``: the
  dataset's K <= 17 keypoints in the first K slots, the rest unlabelled ``(0, 0, 0)``; its loss
  masks keypoints whose coordinates are 0, so the padding never trains.
* **Flip indices** are the dataset's (identity for the padding) instead of COCO's; **loss
  sigmas** are the dataset's instead of COCO's -- the two edits a user training another
  skeleton with that code has to make.
* **Model:** yolov7-tiny or yolov7 (l) from ``--model-cfg`` with ``IKeypoint`` (one 1x1
  keypoint conv per scale, as ``yolov7-w6-pose.yaml``) in place of ``IDetect``; ``MP`` / ``SP``,
  absent from the pose branch's ``models/common.py``, become ``nn.MaxPool2d`` with the same
  kernel, stride and padding; ``RepConv`` (yolov7.yaml's three convs before the head), absent
  too, becomes the branch's ``Conv`` with the same channels, kernel and stride: the one 3x3
  conv + BN + SiLU a RepConv is after re-parameterisation, trained without its parallel 1x1
  branch (ours trains that branch).
* **Environment:** the third-party modules its training and evaluation need
  (``ITS_IMPORTS``) are checked before anything runs, and a missing one stops the run with the
  ``pip install`` line; those it imports only to plot, log or download (``STUBBED``:
  ``seaborn`` and ``pandas`` for its label plots, ``tensorboard`` for its ``SummaryWriter``,
  ``requests`` for downloads it never makes here) get no-op stand-ins when missing (a machine with
  the GPU wheels' stack alone lacks them), and the log says which; ``np.int`` (gone
  in NumPy 1.24) aliases ``int``; ``torch.load`` reads its own
  checkpoints with ``weights_only=False`` (torch >= 2.6 default); ``init_seeds`` takes
  ``--seed`` (its ``train.py`` always seeds 2 + rank); an in-place clamp of its integer grid
  indices with float-tensor bounds, refused since torch 1.12, gets integer bounds; ``last.pt``
  is copied every ``--val-interval`` epochs so the bench has a curve.
* **Divergence:** a NaN or an infinity in the weights it saves at the end of an epoch stops its
  training there (it would otherwise run every remaining epoch on NaN weights); that epoch's
  checkpoint is scored like the others and ``diverged.json`` in the work dir names the epoch,
  which ``bench/accuracy.py`` reports.
* **Speed runs** (``bench/end_to_end.py``): ``--repeat N`` lists every training image N times
  (as a ``RepeatDataset`` does for ours), ``--skip-test`` replaces its ``test.py`` pass by zeros
  (its ``train.py`` runs it after the final epoch even with ``--notest``), and
  :func:`epoch_wall_times` reads its per-epoch wall time from the ``epoch_N.pt`` copies.

Evaluation mirrors the branch's ``test.py`` path: shrink with ``INTER_AREA`` to the input size
(its ``load_image``), letterbox to a square, ``conf_thres=0.001``, ``iou_thres=0.6``, and map
boxes and keypoints back with its ``scale_coords``; the EMA weights are scored.

Example::

    git clone -b pose https://github.com/WongKinYiu/yolov7 /tmp/yolov7_pose
    git -C /tmp/yolov7_pose show origin/main:cfg/training/yolov7-tiny.yaml > /tmp/yolov7-tiny.yaml
    python bench/yolov7_pose_peer.py --yolov7-root /tmp/yolov7_pose \\
        --model-cfg /tmp/yolov7-tiny.yaml --work-dir bench_results/yolov7pose_seed0
"""
import argparse
import json
import math
import os
import runpy
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from _common import REPO_ROOT

NUM_SLOTS = 17  # the pose branch's hard-coded keypoint count
CONF_THRES, IOU_THRES = 0.001, 0.6  # its test.py defaults
DIVERGED_FILE = 'diverged.json'  # in the work dir: the epoch its weights stopped being finite
MODEL_YAML = 'pose_model.yaml'  # in the work dir: the model yaml its train.py builds
PLOTTED_BATCHES = 33  # its train.py draws the first 33 training batches (`if plots and ni < 33`)


# ----------------------------------------------------------------------------- data and model
def convert_label_line(line: str, num_keypoints: int, where: str) -> List[float]:
    """One YOLO keypoint label line as the pose branch's 56 columns.

    Args:
        line (str): ``class cx cy w h`` then ``num_keypoints`` x ``(x, y)`` or ``(x, y, v)``,
            normalised.
        num_keypoints (int): K <= 17.
        where (str): ``file:line`` for the error message.

    Returns:
        list[float]: ``class cx cy w h`` + 17 x ``(x, y, v)``; a keypoint without a visibility
        column is labelled (v = 2) unless it is ``(0, 0)``; slots K..16 are ``(0, 0, 0)``.
    """
    values = [float(v) for v in line.split()]
    per = (len(values) - 5) / num_keypoints if num_keypoints else 0
    if per not in (2, 3):
        raise ValueError(f'{where}: {len(values)} values, expected 5 + {num_keypoints} x 2 '
                         f'or x 3')
    per = int(per)
    out = values[:5]
    for k in range(NUM_SLOTS):
        if k >= num_keypoints:
            out += [0., 0., 0.]
            continue
        x, y = values[5 + per * k:7 + per * k]
        v = values[7 + per * k] if per == 3 else (0. if x == 0 and y == 0 else 2.)
        out += [x, y, v] if v > 0 else [0., 0., 0.]
    return out


def write_split(images: Path, out: Path, num_keypoints: int, repeat: int = 1) -> int:
    """Symlink a split's images into ``out/images`` and write its labels, converted, to
    ``out/labels`` (the branch finds labels by that path substitution). With ``repeat`` > 1
    every image is listed ``repeat`` times (copies ``<stem>_r<k>``, k >= 1, with the same
    label), as a ``RepeatDataset`` lists ours. Returns the count of listed images."""
    labels = images.parent / 'labels'
    (out / 'images').mkdir(parents=True, exist_ok=True)
    (out / 'labels').mkdir(parents=True, exist_ok=True)
    count = 0
    for image in sorted(images.iterdir()):
        if image.suffix.lower() not in ('.jpg', '.jpeg', '.png', '.bmp'):
            continue
        label = labels / f'{image.stem}.txt'
        rows = []
        if label.exists():
            for number, line in enumerate(label.read_text().splitlines(), 1):
                if line.strip():
                    rows.append(convert_label_line(line, num_keypoints, f'{label}:{number}'))
        text = ''.join(' '.join(f'{v:.6g}' for v in row) + '\n' for row in rows)
        for k in range(repeat):
            stem = image.stem if k == 0 else f'{image.stem}_r{k}'
            link = out / 'images' / f'{stem}{image.suffix}'
            if not link.exists():
                link.symlink_to(image.resolve())
            (out / 'labels' / f'{stem}.txt').write_text(text)
            count += 1
    return count


def pose_model_yaml(cfg: dict, num_classes: int) -> dict:
    """A main-branch model's layer list (yolov7-tiny, yolov7) with ``IKeypoint(nkpt=17)`` as
    the head and the modules the pose branch lacks spelled with its own: the two pooling
    modules as ``nn.MaxPool2d``, ``RepConv`` as ``Conv``."""
    model = dict(cfg, nc=num_classes, nkpt=NUM_SLOTS)
    layers = []
    for source, number, module, args in cfg['backbone'] + cfg['head']:
        if module == 'MP':  # 2x2 max-pool, stride 2
            module, args = 'nn.MaxPool2d', [2, 2]
        elif module == 'SP':  # k x k max-pool, stride 1, same size
            kernel = args[0] if args else 3
            module, args = 'nn.MaxPool2d', [kernel, 1, kernel // 2]
        elif module == 'RepConv':  # [c_out, k, s]: its re-parameterised form, one conv
            module = 'Conv'
        elif module in ('IDetect', 'Detect'):
            module, args = 'IKeypoint', ['nc', 'anchors', 'nkpt']
        layers.append([source, number, module, list(args)])
    split = len(cfg['backbone'])
    model['backbone'], model['head'] = layers[:split], layers[split:]
    if not any(layer[2] == 'IKeypoint' for layer in model['head']):
        raise SystemExit('the --model-cfg head has no IDetect/Detect layer to turn into '
                         'IKeypoint')
    return model


def read_model_yaml(path: str) -> dict:
    """A main-branch model yaml (``--model-cfg``), refused with its path when it has no layer
    lists."""
    import yaml
    cfg = yaml.safe_load(Path(path).read_text())
    if not (isinstance(cfg, dict) and isinstance(cfg.get('backbone'), list)
            and isinstance(cfg.get('head'), list)):
        raise SystemExit(f"{path}: no 'backbone' and 'head' layer lists (a model yaml of the "
                         "main branch's cfg/training/)")
    return cfg


def detect_input_channels(path: str) -> List[int]:
    """The output channels of the layers a main-branch model yaml feeds its ``IDetect`` /
    ``Detect`` layer (its ``width_multiple`` applied): what tells yolov7-tiny (128, 256, 512)
    from yolov7 (256, 512, 1024)."""
    cfg = read_model_yaml(path)
    layers = cfg['backbone'] + cfg['head']
    for index, (source, _, module, _) in enumerate(layers):
        if module in ('IDetect', 'Detect'):
            sources = [s + index if s < 0 else s for s in source]
            return [round(layers[s][3][0] * cfg.get('width_multiple', 1.0)) for s in sources]
    raise SystemExit(f'{path}: no IDetect/Detect layer (a model yaml of the main branch\'s '
                     'cfg/training/)')


def _metainfo(path: str) -> dict:
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    return parse_pose_metainfo(dict(from_file=str(Path(path).resolve())))


# third-party modules the branch's train.py / test.py import at load time and use to train and
# evaluate (module -> pip name)
ITS_IMPORTS = {'tqdm': 'tqdm', 'yaml': 'pyyaml', 'matplotlib': 'matplotlib', 'scipy': 'scipy',
               'cv2': 'opencv-python', 'PIL': 'pillow'}
# ... and those it imports only for plots, logs and downloads: a no-op stand-in when missing
# (stub_missing); its training and evaluation never reach them with a meaningful result
STUBBED = ('seaborn', 'pandas', 'tensorboard', 'requests')


def missing_imports(modules: Dict[str, str] = ITS_IMPORTS) -> List[str]:
    """The pip names of the ``modules`` this interpreter cannot find."""
    import importlib.util
    return [pip for module, pip in modules.items() if importlib.util.find_spec(module) is None]


def check_its_imports() -> None:
    """Stop with the ``pip install`` line when a module of ``ITS_IMPORTS`` is missing."""
    missing = missing_imports()
    if missing:
        raise SystemExit(f'the original pose branch imports {", ".join(missing)}, missing from '
                         f'{sys.executable}: pip install {" ".join(missing)}')


def prepare(args: argparse.Namespace, work: Path) -> Dict[str, str]:
    """The branch's data yaml, model yaml and label layout under ``work``; returns the paths."""
    import yaml
    check_its_imports()
    meta = _metainfo(args.metainfo)
    num_keypoints = int(meta['num_keypoints'])
    if num_keypoints > NUM_SLOTS:
        raise SystemExit(f'{args.metainfo}: {num_keypoints} keypoints; the pose branch holds at '
                         f'most {NUM_SLOTS}')
    if args.repeat < 1:
        raise SystemExit(f'--repeat {args.repeat}: list each training image at least once')
    root = Path(args.data_root)
    counts = {split: write_split(root / folder, work / 'data' / split, num_keypoints, repeat)
              for split, folder, repeat in (('train', args.train_images, args.repeat),
                                            ('val', args.val_images, 1))}
    classes = sorted({int(line.split()[0]) for label in (work / 'data').glob('*/labels/*.txt')
                      for line in label.read_text().splitlines() if line.strip()})
    num_classes = max(classes) + 1 if classes else 1
    data_yaml = work / 'data.yaml'
    data_yaml.write_text(yaml.safe_dump(dict(
        train=str((work / 'data/train/images').resolve()),
        val=str((work / 'data/val/images').resolve()), nc=num_classes,
        names=[f'class_{i}' for i in range(num_classes)]), sort_keys=False))
    model_yaml = work / MODEL_YAML
    model_yaml.write_text(yaml.safe_dump(pose_model_yaml(read_model_yaml(args.model_cfg),
                                                         num_classes), sort_keys=False))
    flip = [int(i) for i in meta['flip_indices']] + list(range(num_keypoints, NUM_SLOTS))
    sigmas = [float(s) for s in meta['sigmas']] + [1.] * (NUM_SLOTS - num_keypoints)
    setup = dict(flip_index=flip, sigmas=sigmas, num_keypoints=num_keypoints, counts=counts)
    (work / 'peer_setup.json').write_text(json.dumps(setup, indent=1))
    return dict(data=str(data_yaml), model=str(model_yaml))


# ----------------------------------------------------------------------------- the child
class Diverged(Exception):
    """Its training wrote a NaN or an infinity into its weights (:func:`checkpoint_saver`)."""


def non_finite_part(checkpoint: dict) -> Optional[str]:
    """Where one of its checkpoints (``{'model': Module, 'ema': Module, ...}``, as its
    ``train.py`` saves them) holds a NaN or an infinity: ``'ema: NAME'`` or ``'model: NAME'``
    for the first such floating-point tensor, None when every one is finite."""
    import torch
    for key in ('model', 'ema'):
        module = checkpoint.get(key)
        if module is None:
            continue
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                return f'{key}: {name}'
    return None


def checkpoint_saver(save: Callable, copy_every: int, stop_file: Path) -> Callable:
    """``torch.save`` for its ``train.py``: after each epoch's ``last.pt``, copy it to
    ``epoch_N.pt`` every ``copy_every`` epochs (the bench's curve) and check its weights.

    Non-finite weights end the run: its loss divides by the count of labelled keypoints, a
    batch without any gives a NaN loss, and its SGD step writes NaN into every weight, after
    which its ``train.py`` would go on for the rest of the epochs producing nothing. The
    epoch's checkpoint is copied (so the evaluation scores what the run ended with), the epoch
    and the first non-finite tensor are written to ``stop_file`` and :class:`Diverged` is
    raised out of its training loop."""

    def saver(obj, f, *args, **kwargs):
        save(obj, f, *args, **kwargs)
        if not (str(f).endswith('last.pt') and isinstance(obj, dict) and 'epoch' in obj):
            return
        epoch = int(obj['epoch']) + 1  # strip_optimizer's final re-save has epoch -1
        if epoch <= 0:
            return
        where = non_finite_part(obj)
        if epoch % copy_every == 0 or where:
            # copied under another name, then renamed: a run stopped mid-copy (the bench's
            # --time-limit) leaves no partial epoch_N.pt for the evaluation to choke on
            part = Path(f).with_name(f'epoch_{epoch}.pt.part')
            shutil.copyfile(f, part)
            os.replace(part, Path(f).with_name(f'epoch_{epoch}.pt'))
        if where:
            Path(stop_file).write_text(json.dumps(dict(epoch=epoch, non_finite=where)) + '\n')
            raise Diverged(f'epoch {epoch}: non-finite weights ({where})')

    return saver


def _stub_module(name: str, what: str) -> types.ModuleType:
    """An empty module for ``sys.modules`` with a spec of no origin: ``importlib.util.find_spec``
    (torch._dynamo asks it for pandas when torchvision is imported) then finds it without
    raising, and takes it for no file on disk."""
    import importlib.machinery
    module = types.ModuleType(name)
    module.__file__ = f'<{what} {name} stub>'
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    return module


def _no_op_attribute(name: str) -> Callable:
    """A function that does nothing, for any public attribute ``name`` (dunders stay
    missing, so ``copy``, ``pickle`` and the import system see a plain object)."""
    if name.startswith('__'):
        raise AttributeError(name)
    return lambda *a, **k: None


def _no_op_module(name: str) -> types.ModuleType:
    """A module whose every public attribute is a function that does nothing."""
    module = _stub_module(name, 'no-op')
    module.__getattr__ = _no_op_attribute
    return module


class _NoOpWriter:
    """``SummaryWriter`` without tensorboard: every call does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return _no_op_attribute(name)


def _no_download(*args, **kwargs):
    raise RuntimeError('the original tried a download (requests is not installed here): pass '
                       'local files')


def stub_missing(missing: Sequence[str]) -> List[str]:
    """Install the no-op stand-ins of :data:`STUBBED` named in ``missing`` into ``sys.modules``
    before its code imports them; returns the names stubbed.

    ``seaborn``: every plot call does nothing. ``pandas``: ``DataFrame`` gives None (its label
    plots hand it to seaborn only) and ``options.display`` takes what ``utils/general.py`` sets.
    ``tensorboard``: ``torch.utils.tensorboard.SummaryWriter`` writes nothing. ``requests``:
    a download raises instead of hanging without a network."""
    unknown = sorted(set(missing) - set(STUBBED))
    if unknown:
        raise ValueError(f'no stand-in for {unknown}; stubbed are {STUBBED}')
    for name in missing:
        if name == 'tensorboard':
            module = _stub_module('torch.utils.tensorboard', 'no-op')
            module.SummaryWriter = _NoOpWriter
            sys.modules['torch.utils.tensorboard'] = module
        elif name == 'requests':
            module = _stub_module('requests', 'no-download')
            module.get = module.post = module.head = _no_download
            sys.modules['requests'] = module
        else:
            module = _no_op_module(name)
            if name == 'pandas':
                module.options = types.SimpleNamespace(display=types.SimpleNamespace())
            sys.modules[name] = module
    return list(missing)


def _install_shims(root: Path, setup: dict, seed: int, copy_every: int,
                   stop_file: Path) -> None:
    """Make the branch importable and run for ``setup`` (see the module docstring)."""
    import importlib.util

    import numpy as np
    import torch
    if not hasattr(np, 'int'):
        np.int = int  # removed in NumPy 1.24, used by its datasets.py / general.py
    stubbed = stub_missing([m for m in STUBBED if importlib.util.find_spec(m) is None])
    if stubbed:
        print(f'[yolov7pose] no-op stand-ins for {", ".join(stubbed)} (its plots, logs and '
              'downloads only)', flush=True)
    original_load = torch.load

    def load(*a, **k):
        k.setdefault('weights_only', False)  # its own pickled models
        return original_load(*a, **k)

    torch.load = load
    torch.save = checkpoint_saver(torch.save, copy_every, stop_file)
    clamp_ = torch.Tensor.clamp_

    def int_clamp_(self, min=None, max=None):
        # torch >= 1.12 refuses float-tensor bounds on an integer tensor in place (its
        # build_targets clamps grid indices with bounds taken from a float gain tensor)
        if not self.is_floating_point():
            min, max = (int(b) if isinstance(b, torch.Tensor) else b for b in (min, max))
        return clamp_(self, min, max)

    torch.Tensor.clamp_ = int_clamp_
    sys.path.insert(0, str(root))
    import utils.datasets as datasets
    import utils.general as general
    import utils.loss as loss

    init = datasets.LoadImagesAndLabels.__init__

    def dataset_init(self, *a, **k):
        init(self, *a, **k)
        self.flip_index = list(setup['flip_index'])

    datasets.LoadImagesAndLabels.__init__ = dataset_init
    seed_fn = general.init_seeds
    general.init_seeds = lambda offset=0: seed_fn(seed + offset)

    sigmas = torch.tensor(setup['sigmas'])

    class _Torch(types.ModuleType):
        """``torch`` for its loss module: the one 17-float ``torch.tensor`` there is the COCO
        sigmas x 10; it gets the dataset's."""

        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def tensor(data, *a, **k):
            if isinstance(data, list) and len(data) == NUM_SLOTS and \
                    all(isinstance(v, float) for v in data):
                return (sigmas * 10.).to(k.get('device', 'cpu'))
            return torch.tensor(data, *a, **k)

    loss.torch = _Torch('torch')


def _skip_test(root: Path) -> None:
    """Its ``test.test`` returns zeros without running: ``train.py`` calls it after the final
    epoch even with ``--notest``, which would make that epoch's wall time a training epoch plus
    a validation pass. Zeros are what its results hold before any test (fitness 0 every epoch,
    so ``best.pt`` is still saved each epoch, as in a ``--notest`` run's earlier epochs)."""
    import numpy as np
    import test as its_test  # its train.py does `import test`; root is first on sys.path
    if Path(its_test.__file__).resolve() != root / 'test.py':
        raise SystemExit(f'--skip-test: `import test` found {its_test.__file__}, not the '
                         f"checkout's {root / 'test.py'}")

    def no_test(data, *args, **kwargs):
        # (P, R, mAP@.5, mAP@.5-.95, box, obj, cls), mAP per class, times
        return (0., ) * 7, np.zeros(int(data['nc'])), (0., 0., 0.)

    its_test.test = no_test


def train_child(args: argparse.Namespace) -> None:
    work = Path(args.work_dir).resolve()
    setup = json.loads((work / 'peer_setup.json').read_text())
    root = Path(args.yolov7_root).resolve()
    _install_shims(root, setup, args.seed, args.val_interval, work / DIVERGED_FILE)
    if args.skip_test:
        _skip_test(root)
    device = args.device or ('0' if __import__('torch').cuda.is_available() else 'cpu')
    sys.argv = ['train.py', '--weights', '', '--cfg', str(work / MODEL_YAML),
                '--data', str(work / 'data.yaml'), '--hyp', str(root / 'data/hyp.pose.yaml'),
                '--epochs', str(args.epochs), '--batch-size', str(args.batch),
                '--img-size', str(args.img_size), str(args.img_size), '--device', device,
                '--workers', str(args.workers), '--project', str(work), '--name', 'train',
                '--exist-ok', '--kpt-label', '--notest']
    os.chdir(work)
    try:
        runpy.run_path(str(root / 'train.py'), run_name='__main__')
    except Diverged as stop:
        print(f'[yolov7pose] diverged at {stop}: its training stopped, see {DIVERGED_FILE}',
              flush=True)


def evaluate_child(args: argparse.Namespace) -> None:
    """Score every ``epoch_N.pt`` with ``KptBoxCocoMetric``; one ``scalars.json`` line each,
    where ``bench/accuracy.py`` reads MMEngine's."""
    import cv2
    import numpy as np
    import torch
    work = Path(args.work_dir).resolve()
    setup = json.loads((work / 'peer_setup.json').read_text())
    root = Path(args.yolov7_root).resolve()
    _install_shims(root, setup, args.seed, args.val_interval, work / DIVERGED_FILE)
    import utils.datasets as datasets
    import utils.general as general

    import turtle_plugin  # noqa: F401  (registers the metric)
    from mmengine.registry import init_default_scope
    from mmpose.registry import METRICS
    init_default_scope('mmpose')
    gt = json.loads(Path(args.gt_file).read_text())
    images = {Path(i['file_name']).name: i for i in gt['images']}
    folder = Path(args.data_root) / args.val_images
    num_keypoints = setup['num_keypoints']
    out = work / 'peer_eval' / 'vis_data'
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    checkpoints = sorted((work / 'train' / 'weights').glob('epoch_*.pt'),
                         key=lambda p: int(p.stem.split('_')[1]))
    size = args.img_size
    dataset_meta = _metainfo(args.metainfo)
    for checkpoint in checkpoints:
        ckpt = torch.load(checkpoint, map_location='cpu')
        model = (ckpt.get('ema') or ckpt['model']).float().fuse().eval()
        metric = METRICS.build(dict(type='KptBoxCocoMetric', ann_file=args.gt_file,
                                    score_mode='bbox', nms_mode='none'))
        metric.dataset_meta = dataset_meta
        for name, info in sorted(images.items()):
            img0 = cv2.imread(str(folder / name))
            if img0 is None:
                raise FileNotFoundError(f'{folder / name} (image {info["id"]} of '
                                        f'{args.gt_file}) cannot be read')
            h0, w0 = img0.shape[:2]
            r = size / max(h0, w0)
            img = img0 if r == 1 else cv2.resize(
                img0, (int(w0 * r), int(h0 * r)),
                interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
            img = datasets.letterbox(img, size, auto=False, scaleup=False)[0]
            tensor = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)))
            tensor = tensor.float()[None] / 255.
            with torch.no_grad():
                pred = model(tensor)[0]
            det = general.non_max_suppression(pred, CONF_THRES, IOU_THRES, kpt_label=True,
                                              nc=model.yaml['nc'], nkpt=NUM_SLOTS)[0]
            boxes = general.scale_coords(tensor.shape[2:], det[:, :4].clone(), img0.shape)
            kpts = general.scale_coords(tensor.shape[2:], det[:, 6:].clone(), img0.shape,
                                        kpt_label=True, step=3)
            kpts = kpts.view(len(det), NUM_SLOTS, 3)[:, :num_keypoints]
            sample = dict(id=info['id'], img_id=info['id'], category_id=1, ori_shape=(h0, w0),
                          gt_instances={},
                          pred_instances=dict(bboxes=boxes.numpy(),
                                              bbox_scores=det[:, 4].numpy(),
                                              labels=det[:, 5].long().numpy(),
                                              keypoints=kpts[..., :2].numpy(),
                                              keypoint_scores=kpts[..., 2].numpy()))
            metric.process([], [sample])
        scores = metric.evaluate(len(images))
        lines.append(json.dumps(dict(step=int(checkpoint.stem.split('_')[1]),
                                     **{k: float(v) for k, v in scores.items()
                                        if isinstance(v, (int, float))})))
        print(checkpoint.name, {k: float(scores[k]) for k in ('coco/AP', 'kpt/mean_err_px')
                                if k in scores}, flush=True)
        # after every checkpoint: an evaluation cut short (a time limit) keeps what it scored
        (out / 'scalars.json').write_text('\n'.join(lines) + '\n')
    if not checkpoints:
        (out / 'scalars.json').write_text('')


# ----------------------------------------------------------------------------- timing
def epoch_wall_times(weights: Path, images: int, batch: int) -> List[dict]:
    """Per-epoch wall time of its training from the modification times of the ``epoch_N.pt``
    copies in ``weights`` (written with ``--val-interval 1``, right after its ``last.pt``).

    Epoch N's time is ``mtime(epoch_N.pt) - mtime(epoch_{N-1}.pt)``: the epoch's iterations,
    the end-of-epoch work of its ``train.py`` (EMA attributes, results file, ``last.pt`` and
    ``best.pt`` saves) and the copy. The first epoch has no predecessor (it also holds the
    loader start-up and is warm-up anyway), so the list starts at epoch 2; a copy that is
    missing ends the list.

    Args:
        weights (Path): its ``train/weights`` folder.
        images (int): training images per epoch.
        batch (int): its batch size (for the iterations per epoch).

    Returns:
        list[dict]: per epoch from 2: ``epoch``, ``seconds``, ``images``, ``images_per_s``
        and ``plotted_batches``, how many of the batches its ``train.py`` drew to a jpg in that
        epoch (the first :data:`PLOTTED_BATCHES` of the run; an epoch with any is warm-up).
    """
    if images < 1 or batch < 1:
        raise ValueError(f'images ({images}) and batch ({batch}) must be positive')
    stamps = {}
    for path in weights.glob('epoch_*.pt'):
        stamps[int(path.stem.split('_')[1])] = path.stat().st_mtime
    per_epoch = math.ceil(images / batch)  # its loader keeps the last, smaller batch
    out = []
    epoch = 2
    while epoch in stamps and epoch - 1 in stamps:
        seconds = stamps[epoch] - stamps[epoch - 1]
        first = (epoch - 1) * per_epoch  # its global iteration index `ni` at the epoch start
        out.append(dict(epoch=epoch, seconds=seconds, images=images,
                        images_per_s=images / seconds if seconds > 0 else None,
                        plotted_batches=max(0, min(PLOTTED_BATCHES - first, per_epoch))))
        epoch += 1
    return out


# ----------------------------------------------------------------------------- entry point
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--yolov7-root', required=True, help='checkout of the pose branch')
    parser.add_argument('--model-cfg', required=True,
                        help="the main branch's cfg/training/yolov7-tiny.yaml or yolov7.yaml")
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--data-root', default=str(REPO_ROOT.parent / 'shared/data/tiger_pose'))
    parser.add_argument('--train-images', default='train/images')
    parser.add_argument('--val-images', default='val/images')
    parser.add_argument('--metainfo', default=str(REPO_ROOT / 'configs/_base_/datasets/tiger.py'))
    parser.add_argument('--gt-file', help='COCO ground truth of the val split (default: dumped '
                        'by YOLOKptDataset into the work dir)')
    parser.add_argument('--epochs', type=int, default=90)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--img-size', type=int, default=256)
    parser.add_argument('--val-interval', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--device', default=None, help="its --device: 'cpu' or '0'")
    parser.add_argument('--repeat', type=int, default=1,
                        help='list every training image this many times (speed runs: as a '
                        'RepeatDataset does for ours)')
    parser.add_argument('--skip-test', action='store_true',
                        help="replace its test.py pass (train.py runs it after the final epoch "
                        'even with --notest) by zeros: every epoch a training epoch, for timing')
    parser.add_argument('--stage', choices=('all', 'train', 'evaluate'), default='all')
    parser.add_argument('--child', choices=('train', 'evaluate'), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _ground_truth(args: argparse.Namespace, work: Path) -> str:
    """The val split's COCO ground truth, written as ``bench/accuracy.py`` writes it for every
    other model (run alone; the accuracy bench passes its own file as ``--gt-file``)."""
    from accuracy import val_ground_truth
    return val_ground_truth(argparse.Namespace(
        coco_train=None, data_yaml='', data_root=args.data_root, val_images=args.val_images,
        metainfo=args.metainfo), work)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.child == 'train':
        return train_child(args)
    if args.child == 'evaluate':
        return evaluate_child(args)
    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    if args.stage in ('all', 'train'):
        prepare(args, work)
        (work / DIVERGED_FILE).unlink(missing_ok=True)  # a previous run's
        subprocess.run([sys.executable, __file__, *argv, '--child', 'train'], check=True)
    if args.stage in ('all', 'evaluate'):
        if not args.gt_file:
            argv += ['--gt-file', _ground_truth(args, work)]
        subprocess.run([sys.executable, __file__, *argv, '--child', 'evaluate'], check=True)


if __name__ == '__main__':
    main()
