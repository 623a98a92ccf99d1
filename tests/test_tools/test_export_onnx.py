"""tools/deploy/export_onnx.py: the ONNX file computes what the PyTorch model computes, at the
traced batch size and (with --dynamic) at others, and static exports stay static."""
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from turtle_plugin.apis import YOLOv7DeployGraph, init_model

from conftest import load_tool

REPO = Path(__file__).resolve().parents[2]
KPT_TINY = str(REPO / 'configs' / 'turtle_kpt_tiny.py')
DET_TINY = str(REPO / 'configs' / 'turtle_det_tiny.py')


export_onnx = load_tool('deploy/export_onnx.py')


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _checkpoint(config, path, seed=0):
    """A random model with trained-like BatchNorm statistics (those of random 128x128 images,
    the size exported), saved as a checkpoint."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = init_model(config)
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for norm in norms:
            norm.weight.copy_(torch.rand(norm.weight.shape, generator=gen) + 0.5)
            norm.momentum = 1.0
        model.train()
        model.extract_feat(torch.rand(4, 3, 128, 128, generator=gen))
    torch.save(dict(state_dict=model.state_dict()), path)
    return str(path)


def _normwise_error(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_dynamic_keypoint_export(tmp_path):
    ckpt = _checkpoint(KPT_TINY, tmp_path / 'kpt.pth')
    out = str(tmp_path / 'kpt.onnx')
    errors = export_onnx.main([KPT_TINY, ckpt, '--out', out, '--img-scale', '128', '128',
                               '--dynamic'])
    assert set(errors) == {'bboxes', 'scores', 'keypoints', 'keypoint_scores'}
    assert max(errors.values()) <= 1e-4
    proto = onnx.load(out)
    assert [o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx')] == [17]

    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    train_form = YOLOv7DeployGraph(init_model(KPT_TINY, ckpt))  # not fused
    gen = torch.Generator().manual_seed(1)
    # another batch size and another (multiple of 32) input size than traced
    for shape in [(3, 3, 128, 128), (1, 3, 96, 160)]:
        x = torch.rand(*shape, generator=gen) * 255
        got = session.run(None, {'inputs': x.numpy()})
        with torch.no_grad():
            want = [t.numpy() for t in train_form(x)]
        n = 3 * sum((shape[2] // s) * (shape[3] // s) for s in (8, 16, 32))
        assert got[0].shape == (shape[0], n, 4)
        assert got[2].shape == (shape[0], n, 6, 2)
        for g, w in zip(got, want):
            assert _normwise_error(g, w) <= 1e-4


def test_static_detection_export(tmp_path):
    ckpt = _checkpoint(DET_TINY, tmp_path / 'det.pth')
    out = str(tmp_path / 'det.onnx')
    errors = export_onnx.main([DET_TINY, ckpt, '--out', out, '--img-scale', '128', '96'])
    assert set(errors) == {'bboxes', 'scores'}
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    assert [o.name for o in session.get_outputs()] == ['bboxes', 'scores']
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 96, 128)).astype(np.float32)
    bboxes, scores = session.run(None, {'inputs': x})
    n = 3 * (12 * 16 + 6 * 8 + 3 * 4)
    assert bboxes.shape == (1, n, 4) and scores.shape == (1, n, 1)
    assert ((scores >= 0) & (scores <= 1)).all()
    with pytest.raises(Exception, match='(?i)dimension|shape'):
        session.run(None, {'inputs': np.concatenate([x, x])})  # batch is fixed at 1


def test_rejects_sizes_off_the_stride(tmp_path):
    ckpt = _checkpoint(DET_TINY, tmp_path / 'det.pth')
    with pytest.raises(ValueError, match='multiple of 32'):
        export_onnx.main([DET_TINY, ckpt, '--out', str(tmp_path / 'x.onnx'),
                          '--img-scale', '100', '96'])
