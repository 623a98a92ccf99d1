"""Anchor fit (BPR), k-means anchor estimation, box sizes of a dataset, and the
tools/analysis/check_anchors.py tool."""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpose.registry import DATASETS

import turtle_plugin  # noqa: F401
from turtle_plugin.models.task_modules import (anchor_ratio_metric, anchors_to_levels,
                                               check_anchor_fit, gt_box_sizes, kmeans_anchors)

from conftest import load_tool

REPO = Path(__file__).resolve().parents[2]
TIGER_CONFIG = REPO / 'configs' / 'tiger_kpt_tiny.py'

# three size clusters, 60 boxes each, +-5 % log-normal spread
CENTRES = np.array([[10., 20.], [50., 30.], [120., 200.]])


def _clustered(seed=1, per_cluster=60):
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [c * np.exp(rng.normal(0, 0.05, (per_cluster, 2))) for c in CENTRES])


# ---------------------------------------------------------------------------- fit metric
def test_ratio_metric_by_hand():
    wh = [[10, 10], [40, 10]]
    anchors = [[10, 10], [20, 5]]
    # (10,10) vs (20,5): ratios (0.5, 2) -> min(0.5, 2) = 0.5, min(2, 0.5) = 0.5 -> 0.5
    # (40,10) vs (10,10): ratios (4, 1) -> min(0.25, 1) = 0.25; vs (20,5): (2, 2) -> 0.5
    np.testing.assert_allclose(anchor_ratio_metric(wh, anchors), [[1.0, 0.5], [0.25, 0.5]])


def test_bpr_and_anchors_above_threshold_by_hand():
    wh = torch.tensor([[10., 10.], [40., 10.], [100., 100.]])
    # box 1 matches exactly; box 2 is exactly 4x wide (the limit is exclusive); box 3 is 10x
    bpr, aat = check_anchor_fit(wh, [[10, 10]], thr=4.0)
    assert bpr == pytest.approx(1 / 3) and aat == pytest.approx(1 / 3)
    # a second anchor (40, 10) catches box 2 and is not within 4x of box 1
    bpr, aat = check_anchor_fit(wh, [[[10, 10]], [[40, 10]]], thr=4.0)
    assert bpr == pytest.approx(2 / 3) and aat == pytest.approx(2 / 3)
    # with thr 12 (limit 1/12) every box sees both anchors; the worst pair is box 3 against
    # (40, 10): ratios (2.5, 10) -> 0.1 > 1/12
    bpr, aat = check_anchor_fit(wh, [[10, 10], [40, 10]], thr=12.0)
    assert bpr == 1.0 and aat == 2.0


def test_fit_rejects_bad_inputs():
    with pytest.raises(ValueError, match='at least one box'):
        check_anchor_fit(np.zeros((0, 2)), [[10, 10]])
    with pytest.raises(ValueError, match='positive'):
        check_anchor_fit([[0, 10]], [[10, 10]])
    with pytest.raises(ValueError, match='must be > 1'):
        check_anchor_fit([[10, 10]], [[10, 10]], thr=1.0)


# ---------------------------------------------------------------------------- k-means
def test_kmeans_recovers_clusters_and_is_seeded():
    wh = _clustered()
    anchors = kmeans_anchors(wh, n=3, gen=200, seed=0)
    assert anchors.shape == (3, 2)
    assert (np.diff(anchors.prod(axis=1)) > 0).all()  # sorted by area
    np.testing.assert_allclose(anchors, CENTRES, rtol=0.05)
    np.testing.assert_array_equal(anchors, kmeans_anchors(wh, n=3, gen=200, seed=0))


def test_kmeans_raises_recall_of_bad_anchors():
    wh = _clustered()
    bad = [[300, 300]] * 3  # only the largest cluster is within 4x
    before, _ = check_anchor_fit(wh, bad)
    assert before == pytest.approx(1 / 3)
    anchors = kmeans_anchors(wh, n=3, gen=100, seed=0)
    after, aat = check_anchor_fit(wh, anchors)
    assert after == 1.0 >= before


def test_kmeans_mutation_never_lowers_fitness():
    """The search only keeps improvements: its fitness is at least k-means' own (gen=0)."""
    wh = _clustered(seed=2, per_cluster=20) * np.array([1.0, 3.0])

    def fitness(anchors):
        best = anchor_ratio_metric(wh, anchors).max(axis=1)
        return (best * (best > 0.25)).mean()

    assert fitness(kmeans_anchors(wh, n=2, gen=300, seed=0)) >= \
        fitness(kmeans_anchors(wh, n=2, gen=0, seed=0))


def test_kmeans_errors_are_specific():
    with pytest.raises(ValueError, match='at least 3 distinct'):
        kmeans_anchors([[10, 10]] * 5 + [[20, 20]], n=3)
    with pytest.raises(ValueError, match='larger than img_size=64'):
        kmeans_anchors([[10, 10], [100, 20], [30, 30]], n=2, img_size=64)
    with pytest.raises(ValueError, match='min_size'):
        kmeans_anchors([[1, 1], [1.5, 1]], n=1)


def test_anchors_to_levels_sorts_and_groups():
    flat = [[50, 50], [10, 10], [200.4, 100.6], [30, 20], [5, 4], [80, 90]]
    assert anchors_to_levels(flat, num_levels=3) == [[(5, 4), (10, 10)], [(30, 20), (50, 50)],
                                                     [(80, 90), (200, 101)]]
    with pytest.raises(ValueError, match='evenly'):
        anchors_to_levels(flat, num_levels=4)


# ---------------------------------------------------------------------------- dataset sizes
class _Infos:
    """Minimal dataset: ``get_data_info`` of MMPose bottom-up / MMDetection infos."""

    def __init__(self, infos):
        self.infos = infos

    def __len__(self):
        return len(self.infos)

    def get_data_info(self, index):
        return self.infos[index]


def test_gt_box_sizes_scale_the_long_side():
    dataset = _Infos([
        # 1280x720 -> x 0.2 at 256
        dict(width=1280, height=720, bbox=np.array([[0, 0, 100, 50], [10, 10, 10, 30]])),
        # portrait 300x600 via ori_shape (h, w) and MMDetection instances -> x 256/600
        dict(ori_shape=(600, 300), instances=[dict(bbox=[0, 0, 60, 120])]),
        dict(width=64, height=64, bbox=np.zeros((0, 4))),  # no boxes
    ])
    wh = gt_box_sizes(dataset, img_size=256)
    # the zero-width box (10, 10, 10, 30) is dropped
    np.testing.assert_allclose(wh, [[20, 10], [25.6, 51.2]], rtol=1e-6)


# ---------------------------------------------------------------------------- the tool
def _config(tmp_path) -> Path:
    """The bundled tiger config when it exists, else an equivalent one on a made-up set."""
    if TIGER_CONFIG.exists():
        return TIGER_CONFIG
    import cv2
    root = tmp_path / 'data'
    rows = ['0 0.5 0.5 0.5 0.25 0.5 0.5', '0 0.2 0.2 0.1 0.2 0.2 0.2',
            '0 0.5 0.5 0.9 0.9 0.5 0.5', '0 0.6 0.6 0.05 0.05 0.6 0.6']
    for i, row in enumerate(rows):
        (root / 'train' / 'images').mkdir(parents=True, exist_ok=True)
        (root / 'train' / 'labels').mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / 'train' / 'images' / f'{i}.jpg'), np.zeros((128, 256, 3)))
        (root / 'train' / 'labels' / f'{i}.txt').write_text(row + '\n')
    (root / 'data.yaml').write_text('train: train\nval: train\nnames: [thing]\n'
                                    'kpt_shape: [1, 2]\n')
    config = tmp_path / 'cfg.py'
    config.write_text(
        "default_scope = 'mmpose'\n"
        "custom_imports = dict(imports=['turtle_plugin'], allow_failed_imports=False)\n"
        "model = dict(head=dict(img_size=256, anchors=[[(12, 16)], [(36, 75)],"
        " [(142, 110)]]))\n"
        f"train_dataloader = dict(dataset=dict(type='YOLOKptDataset', data_root='{root}', "
        "data_yaml='data.yaml', pipeline=[]))\n")
    return config


def test_check_anchors_tool(tmp_path, monkeypatch, capsys):
    config = _config(tmp_path)
    monkeypatch.chdir(REPO)  # the bundled config's data_root is relative to the repository
    tool = load_tool('analysis/check_anchors.py')
    result = tool.main([str(config), '--kmeans', '--gen', '50', '--cfg-options',
                        'train_dataloader.dataset.use_cache=False'])
    cfg = Config.fromfile(str(config))
    head = tool.head_config(cfg)
    assert result['img_size'] == head.get('img_size', 640) == 256
    # BPR of the config's anchors, recomputed here from the dataset's own infos
    dataset_cfg = tool._without_pipeline(cfg['train_dataloader']['dataset'])
    dataset_cfg['use_cache'] = False
    wh = gt_box_sizes(DATASETS.build(dataset_cfg), result['img_size'])
    assert result['num_boxes'] == len(wh) > 0
    assert result['bpr'] == pytest.approx(check_anchor_fit(wh, head['anchors'])[0])
    assert result['new_bpr'] >= result['bpr']
    assert len(result['new_anchors']) == len(head['anchors'])
    assert all(len(level) == len(head['anchors'][0]) for level in result['new_anchors'])
    areas = [w * h for level in result['new_anchors'] for w, h in level]
    assert areas == sorted(areas)
    printed = capsys.readouterr().out
    assert 'best possible recall' in printed and 'anchors = [[(' in printed
