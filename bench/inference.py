"""Inference speed: the deploy model vs the training-form model vs ONNX Runtime, and vs the
original YOLOv7.

What is timed is one forward pass from a letterboxed image batch to decoded predictions, before
NMS (NMS depends on how many boxes a trained model keeps, not on the network):

* ``train_form``: :class:`turtle_plugin.apis.YOLOv7DeployGraph` around the model as trained
  (eval mode): RepConv branches, separate BatchNorm layers, implicit layers.
* ``deploy``: the same after :func:`turtle_plugin.apis.to_deploy` (RepConv re-parameterised,
  BatchNorm and implicit layers folded into the convs).
* ``deploy_cl``: the deploy model with weights and input in channels-last memory format.
* ``onnxruntime``: the deploy graph exported by ``tools/deploy/export_onnx.py``'s ``export``
  (dynamic batch), run by ONNX Runtime's CPU provider.
* ``yolov7_unfused`` / ``yolov7_fused``: the original's ``models.yolo.Model`` built from
  ``cfg/training/yolov7{-tiny}.yaml`` with ``nc=1`` (its forward includes the same decoding),
  eval mode, as is and after its own ``Model.fuse()``; imported from a local checkout given by
  ``--yolov7-root`` (never vendored; without it no comparison). Compared with our *detection*
  configs (``turtle_det{_tiny}.py``: the same network without the keypoint branch, which the
  original's main branch does not have); our keypoint configs (``turtle_kpt{_tiny}.py``) are
  timed too.

Latency at batch 1 and throughput at ``--batch`` (default 8 on CPU: a batch of 32 YOLOv7-l
forwards takes seconds per call on a 2-core machine; 32 on CUDA; keypoint models only), random
weights with BatchNorm statistics calibrated on random images (speed does not depend on the
values; the reported errors then are those of a network whose activations keep their scale)
and random pixels, ``--img-size`` 256. Within each (arch, batch) group the implementations take
turns call by call (``bench/_common.interleaved_timings``) so load from other processes hits
all alike; figures are medians over ``--repeats``, ratios medians of per-repeat ratios of CPU
time (of wall time on CUDA, synchronised). Two clocks: wall time and process CPU time
(steadier on a shared machine; with ``--threads 1`` it is the time a core of its own would
take). ``err vs deploy`` is
``max |out - deploy| / max |deploy|`` over the outputs, on the group's input.

Example (the original needs pandas, requests and seaborn at import time: install them outside
this environment, e.g. ``pip install --no-deps --target /tmp/y7deps ...``)::

    PYTHONPATH=/tmp/y7deps python bench/inference.py --threads 1 --yolov7-root /tmp/yolov7 \\
        --out bench_results/inference.json
"""
import argparse
import copy
import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from _common import (REPO_ROOT, import_original, interleaved_timings, machine_info, median,
                     peer_info, print_table, result_payload, utc_now, write_json)

CONFIGS = {
    ('tiny', 'kpt'): 'turtle_kpt_tiny.py', ('l', 'kpt'): 'turtle_kpt.py',
    ('tiny', 'det'): 'turtle_det_tiny.py', ('l', 'det'): 'turtle_det.py',
}
ORIGINAL_CFGS = {'tiny': 'cfg/training/yolov7-tiny.yaml', 'l': 'cfg/training/yolov7.yaml'}
TARGET = 0.7  # deploy latency at batch 1 <= TARGET x the original's unfused model
CLOCKS = {'wall': time.perf_counter, 'cpu': time.process_time}
HEADERS = ['arch', 'device', 'batch', 'impl', 'ms/batch cpu', 'ms/batch wall', 'img/s wall',
           'vs train_form', 'vs yolov7_unfused', f'<= {TARGET}x', 'err vs deploy']


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archs', nargs='+', choices=('tiny', 'l'), default=['tiny', 'l'])
    parser.add_argument('--img-size', type=int, default=256)
    parser.add_argument('--batch', type=int, default=None,
                        help='throughput batch size (default 8 on CPU, 32 on CUDA)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch and ONNX Runtime intra-op threads (default: torch\'s)')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--calls', type=int, nargs=2, default=(10, 2), metavar=('B1', 'BN'),
                        help='timed calls per repeat at batch 1 and at --batch, for tiny; '
                        'l gets a quarter of them (at least 2 and 1)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed calls per case')
    parser.add_argument('--yolov7-root', default=None,
                        help='local checkout of WongKinYiu/yolov7 (main branch); omitted or '
                        'missing: no comparison')
    parser.add_argument('--no-onnx', action='store_true', help='skip ONNX Runtime')
    parser.add_argument('--no-cuda', action='store_true', help='skip CUDA even if present')
    parser.add_argument('--no-cpu', action='store_true', help='time CUDA only')
    parser.add_argument('--out', default='bench_results/inference.json')
    return parser.parse_args(argv)


# -------------------------------------------------------------------------- ours
@torch.no_grad()
def calibrate_batchnorm(model, img_size: int) -> None:
    """Random BatchNorm affine parameters and the running statistics of a batch of random
    images, as after training: activations keep a trained network's scale, so the errors
    reported (fusion, ONNX Runtime, bfloat16) are those of a realistic network."""
    gen = torch.Generator().manual_seed(0)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.weight.copy_(torch.rand(norm.weight.shape, generator=gen) + 0.5)
        norm.bias.copy_(torch.randn(norm.bias.shape, generator=gen) * 0.1)
        norm.momentum = 1.0
    model.train()
    device = next(model.parameters()).device
    model.extract_feat(torch.rand(4, 3, img_size, img_size, generator=gen).to(device))
    for norm in norms:
        norm.momentum = 0.03
    model.eval()


def build_ours(arch: str, task: str, device: str, img_size: int):
    """(training-form graph, deploy graph) of one of our configs, random weights."""
    from turtle_plugin.apis import YOLOv7DeployGraph, init_model, to_deploy
    torch.manual_seed(0)
    model = init_model(str(REPO_ROOT / 'configs' / CONFIGS[(arch, task)]), device=device)
    calibrate_batchnorm(model, img_size)
    deployed = to_deploy(copy.deepcopy(model))
    return YOLOv7DeployGraph(model).eval(), YOLOv7DeployGraph(deployed).eval()


def onnx_session(graph, img_size: int, threads: Optional[int], folder: Path):
    """Export ``graph`` (dynamic batch) and open it with ONNX Runtime's CPU provider."""
    import onnxruntime as ort
    spec = importlib.util.spec_from_file_location(
        'export_onnx', REPO_ROOT / 'tools' / 'deploy' / 'export_onnx.py')
    export_onnx = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export_onnx)
    path = folder / f'{id(graph)}.onnx'
    export_onnx.export(graph.cpu(), torch.rand(1, 3, img_size, img_size) * 255, str(path),
                       dynamic=True)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


# -------------------------------------------------------------------------- original
def build_original(module, root: Path, arch: str, device: str):
    """(unfused, fused) original models, ``nc=1``, random weights, eval mode."""
    torch.manual_seed(0)
    model = module.Model(str(root / ORIGINAL_CFGS[arch]), ch=3, nc=1).to(device).eval()
    with torch.no_grad():  # its fuse edits parameters in place (its checkpoints need no grad)
        fused = copy.deepcopy(model).fuse().eval()
    return model, fused


# ------------------------------------------------------------------------------ main
def make_case(fn: Callable, inputs) -> Callable[[int, Sequence[int]], None]:
    """A timing case: ``fn(inputs)`` once per item, CUDA synchronised."""

    def case(repeat: int, chunk: Sequence[int]) -> None:
        with torch.inference_mode():
            for _ in chunk:
                fn(inputs)
        if isinstance(inputs, torch.Tensor) and inputs.is_cuda:
            torch.cuda.synchronize()

    return case


def ours_variants(train_form, deployed) -> Dict[str, tuple]:
    """impl suffix -> (callable, input memory format) of one of our models. ``deploy_cl`` is
    the deploy model with weights and input in channels-last (NHWC) memory format, which
    oneDNN's CPU convolutions prefer: same float32 arithmetic, other kernels."""
    channels_last = copy.deepcopy(deployed).to(memory_format=torch.channels_last)
    return {'train_form': (train_form, torch.contiguous_format),
            'deploy': (deployed, torch.contiguous_format),
            'deploy_cl': (channels_last, torch.channels_last)}


def group_cases(device: str, batch: int, tasks: Sequence[str], ours: Dict,
                original: Optional[tuple], sessions: Dict, img_size: int):
    """Timing cases of one (arch, device, batch) group and each case's max error relative to
    the deploy model's outputs (``max |a - b| / max |b|`` over the outputs)."""
    gen = torch.Generator().manual_seed(batch)
    pixels = torch.rand(batch, 3, img_size, img_size, generator=gen) * 255
    cases, errors = {}, {}
    for task in tasks:
        with torch.no_grad():
            reference = ours[task]['deploy'][0](pixels.to(device))
        for suffix, (fn, memory_format) in ours[task].items():
            x = pixels.to(device).contiguous(memory_format=memory_format)
            cases[f'{task}_{suffix}'] = make_case(fn, x)
            with torch.no_grad():
                errors[f'{task}_{suffix}'] = _error(fn(x), reference)
        if task in sessions:
            feed = {'inputs': pixels.numpy()}
            run = (lambda _, s=sessions[task], f=feed: s.run(None, f))
            cases[f'{task}_onnxruntime'] = make_case(run, None)
            errors[f'{task}_onnxruntime'] = _error(
                [torch.from_numpy(o) for o in run(None)], reference)
    if original is not None:
        normalised = pixels.to(device) / 255  # its input: [0, 1] (channel order irrelevant)
        cases['yolov7_unfused'] = make_case(original[0], normalised)
        cases['yolov7_fused'] = make_case(original[1], normalised)
    return cases, errors


def _error(outputs, reference) -> float:
    return max(float((o.float().cpu() - r.cpu()).abs().max() / r.abs().max().clamp(min=1e-12))
               for o, r in zip(outputs, reference))


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = utc_now()
    machine = machine_info(('numpy', 'torch', 'onnxruntime', 'onnx', 'mmcv', 'mmdet', 'mmpose'))
    print(f"{machine['cpu']}, {machine['usable_cpus']} usable CPUs, load average "
          f"{machine['load_average']}, torch threads {torch.get_num_threads()}")
    root = Path(args.yolov7_root) if args.yolov7_root else None
    module = None
    if root is None or not (root / 'models' / 'yolo.py').is_file():
        print(f'no YOLOv7 checkout at {root}: timing ours only, no comparison')
    else:
        module, = import_original(root, 'models.yolo')
    devices = ([] if args.no_cpu else ['cpu']) + (
        ['cuda'] if torch.cuda.is_available() and not args.no_cuda else [])
    if not devices:
        raise SystemExit('--no-cpu and no CUDA device: nothing to time')
    if 'cuda' in devices:
        machine['gpu'] = torch.cuda.get_device_name()

    results, rows = [], []
    with tempfile.TemporaryDirectory() as folder:
        for device in devices:
            big_batch = args.batch or (32 if device == 'cuda' else 8)
            for arch in args.archs:
                graphs = {task: build_ours(arch, task, device, args.img_size)
                          for task in ('kpt', 'det')}
                ours = {task: ours_variants(*graphs[task]) for task in graphs}
                original = build_original(module, root, arch, device) if module else None
                sessions = {}
                if device == 'cpu' and not args.no_onnx:
                    sessions = {task: onnx_session(graphs[task][1], args.img_size,
                                                   args.threads, Path(folder))
                                for task in graphs}
                for batch, calls in ((1, args.calls[0]), (big_batch, args.calls[1])):
                    if arch == 'l':
                        calls = max(calls // 4, 2 if batch == 1 else 1)
                    # the big batch times the keypoint models only: the detection models and
                    # the original would add minutes and answer no other question
                    tasks = ('kpt', 'det') if batch == 1 else ('kpt', )
                    cases, errors = group_cases(device, batch, tasks, ours,
                                                original if batch == 1 else None, sessions,
                                                args.img_size)
                    for case in cases.values():
                        case(-1, range(args.warmup))
                    seconds = interleaved_timings(cases, list(range(calls)), args.repeats,
                                                  chunk_size=1, clocks=CLOCKS)
                    block = summarise(arch, device, batch, calls, seconds, errors, results)
                    print_table(HEADERS, block)
                    rows += block

    payload = result_payload(
        'inference', started, machine,
        dict(vars(args), torch_threads=torch.get_num_threads(), devices=devices),
        original=peer_info(root, module is not None, configs=ORIGINAL_CFGS), results=results)
    print_table(HEADERS, rows, title='one forward pass (letterboxed batch -> decoded '
                'predictions, no NMS); medians of repeats, ratios medians of per-repeat ratios '
                '(CPU time)')
    print(f'\nwritten to {write_json(args.out, payload)}')
    return payload


def summarise(arch: str, device: str, batch: int, calls: int,
              seconds: Dict[str, Dict[str, List[float]]], errors: Dict[str, float],
              results: List[Dict]) -> List[List]:
    """Per case: medians, ratios to the training form of the same task and to the original's
    unfused model; appends the entries to ``results`` and returns table rows."""
    per_call = {impl: {clock: [s / calls for s in values] for clock, values in by.items()}
                for impl, by in seconds.items()}

    def ratio(impl: str, peer: str) -> Optional[float]:
        if peer not in per_call or impl == peer:
            return None
        clock = 'wall' if device == 'cuda' else 'cpu'  # CPU time means nothing for GPU work
        return median([a / b for a, b in zip(per_call[impl][clock], per_call[peer][clock])])

    block = []
    for impl, by in per_call.items():
        task = impl.split('_')[0]
        vs_train = ratio(impl, f'{task}_train_form') if task in ('kpt', 'det') else None
        vs_original = ratio(impl, 'yolov7_unfused')
        met = None
        if vs_original is not None and impl.startswith('det_') and batch == 1:
            met = vs_original <= TARGET
        entry = dict(arch=arch, device=device, batch=batch, impl=impl, calls_per_repeat=calls,
                     ms_per_batch_cpu=1e3 * median(by['cpu']),
                     ms_per_batch_wall=1e3 * median(by['wall']),
                     images_per_s_wall=batch / median(by['wall']),
                     ratio_vs_train_form=vs_train, ratio_vs_yolov7_unfused=vs_original,
                     target=TARGET if met is not None else None, met=met,
                     error_vs_deploy=errors.get(impl), per_repeat_s=by)
        results.append(entry)
        block.append([arch, device, batch, impl, entry['ms_per_batch_cpu'],
                      entry['ms_per_batch_wall'], entry['images_per_s_wall'],
                      f'{vs_train:.2f}' if vs_train is not None else None,
                      f'{vs_original:.2f}' if vs_original is not None else None,
                      None if met is None else ('yes' if met else 'no'),
                      None if errors.get(impl) is None else f'{errors[impl]:.1e}'])
    return block


if __name__ == '__main__':
    main()
