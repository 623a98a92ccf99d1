"""Export a trained model to ONNX and check the file against PyTorch with ONNX Runtime.

    python tools/deploy/export_onnx.py configs/turtle_kpt.py CKPT --out turtle_kpt.onnx
    python tools/deploy/export_onnx.py configs/turtle_kpt.py CKPT --out turtle_kpt.onnx \
        --img-scale 1280 736 --dynamic

The exported graph is the deploy model (RepConv re-parameterised, BatchNorm and the head's
implicit layers folded into convs) from preprocessing to *decoded* predictions, before score
filtering and NMS (:class:`turtle_plugin.apis.YOLOv7DeployGraph`):

- input ``inputs``: ``(B, 3, H, W)`` float32, 0-255, BGR (as OpenCV reads), letterboxed;
- outputs ``bboxes`` ``(B, N, 4)`` xyxy input pixels, ``scores`` ``(B, N, C)``
  (``sigmoid(obj) * sigmoid(cls)``) and, for keypoint models, ``keypoints`` ``(B, N, K, 2)``
  input pixels and ``keypoint_scores`` ``(B, N, K)``.

Post-process as the Python API does: keep ``scores > score_thr`` (0.001 for mAP, ~0.3 for
display), class-wise NMS at IoU 0.65, then undo the letterbox. ``--dynamic`` makes the batch,
height and width dynamic (height and width must stay multiples of 32).

Uses PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``), opset 17:
the graph is a plain trace (no data-dependent control flow), which that exporter handles with
dynamic axes and no extra dependency.
"""
import argparse
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from turtle_plugin.apis import YOLOv7DeployGraph, init_model, letterbox_size

OPSET = 17


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a turtle_plugin model to ONNX')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--img-scale', type=int, nargs=2, metavar=('W', 'H'),
                        help="input size (default: the config's letterbox size)")
    parser.add_argument('--batch', type=int, default=1, help='batch size of the traced input')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, height and width')
    parser.add_argument('--opset', type=int, default=OPSET, help='ONNX opset version')
    parser.add_argument('--no-check', action='store_true',
                        help='skip the ONNX Runtime comparison')
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='tolerance of the check, relative to each output\'s largest value')
    return parser.parse_args(argv)


def export(graph: YOLOv7DeployGraph, inputs: torch.Tensor, out: str, dynamic: bool = False,
           opset: int = OPSET) -> None:
    """Trace ``graph`` on ``inputs`` and write the ONNX file ``out``."""
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {'inputs': {0: 'batch', 2: 'height', 3: 'width'}}
        dynamic_axes.update({name: {0: 'batch', 1: 'num_preds'} for name in graph.output_names})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter announces its deprecation; it is chosen on purpose here
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.onnx.export(graph, (inputs, ), out, dynamo=False, opset_version=opset,
                          input_names=['inputs'], output_names=graph.output_names,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)


def check(out: str, graph: YOLOv7DeployGraph, inputs: torch.Tensor,
          atol: float = 1e-4) -> Dict[str, float]:
    """Run the ONNX file with ONNX Runtime (CPU) and compare with PyTorch.

    Returns, per output, ``max |onnx - torch| / max |torch|``; raises when one exceeds
    ``atol``. (Decoded coordinates cross zero, where an element-wise relative error means
    nothing, so each output's error is measured against its largest magnitude.)
    """
    import onnx
    import onnxruntime as ort
    onnx.checker.check_model(out)
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    onnx_outs = session.run(None, {'inputs': inputs.cpu().numpy()})
    with torch.no_grad():
        torch_outs = [t.cpu().numpy() for t in graph(inputs)]
    errors = {}
    for name, got, want in zip(graph.output_names, onnx_outs, torch_outs):
        if got.shape != want.shape:
            raise AssertionError(f'ONNX output {name} has shape {got.shape}, PyTorch '
                                 f'{want.shape}')
        errors[name] = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))
    bad = {name: err for name, err in errors.items() if err > atol}
    if bad:
        raise AssertionError(f'ONNX Runtime and PyTorch disagree beyond {atol}: {bad}')
    return errors


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Export (and check); returns the check's errors (empty with ``--no-check``)."""
    args = parse_args(argv)
    if args.batch < 1:
        raise ValueError(f'--batch must be >= 1, got {args.batch}')
    model = init_model(args.config, args.checkpoint, device='cpu', deploy=True)
    width, height = args.img_scale or letterbox_size(model.cfg)
    if width % 32 or height % 32:
        raise ValueError(f'the input size must be a multiple of 32 (the largest stride), got '
                         f'{width}x{height}')
    graph = YOLOv7DeployGraph(model).eval()
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(args.batch, 3, height, width, generator=generator) * 255
    export(graph, inputs, args.out, args.dynamic, args.opset)
    print(f'wrote {args.out}: input (B, 3, {height}, {width}), outputs {graph.output_names}, '
          f'opset {args.opset}, TorchScript exporter', flush=True)
    if args.no_check:
        return {}
    if args.dynamic:  # a batch size other than the traced one exercises the dynamic axis
        inputs = torch.rand(args.batch + 1, 3, height, width, generator=generator) * 255
    errors = check(args.out, graph, inputs, args.atol)
    print('ONNX Runtime vs PyTorch, max error / max value: ' +
          ', '.join(f'{name} {err:.2e}' for name, err in errors.items()), flush=True)
    return errors


if __name__ == '__main__':
    main()
