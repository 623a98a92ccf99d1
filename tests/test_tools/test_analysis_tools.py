"""tools/analysis/get_flops.py and plot_curves.py."""
import json
from pathlib import Path

import pytest

from conftest import load_tool

REPO = Path(__file__).resolve().parents[2]


def test_get_flops_matches_the_original_forward_cost():
    """YOLOv7-l at 256x256 costs 16.7 GFLOP (2 x multiply-adds) per image, as measured for the
    original (shared/gpu-wheels/README.md); the keypoint branch adds exactly its 1x1 convs."""
    get_flops = load_tool('analysis/get_flops.py')
    det = get_flops.model_complexity(str(REPO / 'configs/turtle_det.py'), (256, 256))
    assert det['params'] == 37_196_556
    assert 2 * det['flops'] / 1e9 == pytest.approx(16.7, abs=0.1)
    kpt = get_flops.model_complexity(str(REPO / 'configs/turtle_kpt.py'), (256, 256))
    # 3 anchors x 6 keypoints x (x, y) = 36 outputs per cell at strides 8, 16, 32
    kpt_macs = 36 * (256 * 32 * 32 + 512 * 16 * 16 + 1024 * 8 * 8)
    assert kpt['flops'] - det['flops'] == kpt_macs
    deploy = get_flops.model_complexity(str(REPO / 'configs/turtle_kpt.py'), (256, 256),
                                        deploy=True)
    assert deploy['params'] < kpt['params'] and deploy['flops'] < kpt['flops']


def test_plot_curves_reads_mmengine_scalars_and_names_bad_lines(tmp_path):
    plot_curves = load_tool('analysis/plot_curves.py')
    log = tmp_path / 'scalars.json'
    rows = [dict(loss=1.0 / (i + 1), lr=0.01, step=i + 1) for i in range(5)]
    rows.append({'coco/AP': 0.5, 'step': 1})
    log.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    series = plot_curves.load_scalars(str(log))
    assert series['loss'][0] == (1, 1.0) and len(series['loss']) == 5
    assert series['coco/AP'] == [(1, 0.5)]
    out = tmp_path / 'curves.png'
    plot_curves.plot_curves([str(log)], ['loss', 'coco/AP'], str(out))
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    with pytest.raises(KeyError, match='available'):
        plot_curves.plot_curves([str(log)], ['loss_kpt'], str(out))
    log.write_text(log.read_text() + '{"loss": 1.0\n')
    with pytest.raises(ValueError, match=r'scalars.json:7: not a JSON line'):
        plot_curves.load_scalars(str(log))
