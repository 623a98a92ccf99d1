"""pr_f1_curve on hand-counted cases, save_pr_curve's files."""
import json

import numpy as np
import pytest

from turtle_plugin.evaluation.functional import pr_f1_curve, save_pr_curve


def test_hand_counted_curve():
    # 3 GTs; by score: TP, FP, TP, FP
    curve = pr_f1_curve(np.array([0.7, 0.9, 0.6, 0.8]), np.array([True, True, False, False]), 3)
    # thr 0.9: 1 TP 0 FP -> P 1, R 1/3, F1 2*(1/3)/(4/3) = 1/2
    # thr 0.8: 1 TP 1 FP -> P 1/2, R 1/3, F1 2*(1/6)/(5/6) = 2/5
    # thr 0.7: 2 TP 1 FP -> P 2/3, R 2/3, F1 2/3
    # thr 0.6: 2 TP 2 FP -> P 1/2, R 2/3, F1 2*(1/3)/(7/6) = 4/7
    np.testing.assert_array_equal(curve['threshold'], [0.9, 0.8, 0.7, 0.6])
    np.testing.assert_allclose(curve['precision'], [1, 1 / 2, 2 / 3, 1 / 2], rtol=0, atol=1e-15)
    np.testing.assert_allclose(curve['recall'], [1 / 3, 1 / 3, 2 / 3, 2 / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(curve['f1'], [1 / 2, 2 / 5, 2 / 3, 4 / 7], rtol=0, atol=1e-15)
    assert curve['best']['threshold'] == 0.7
    assert curve['best']['precision'] == pytest.approx(2 / 3, abs=1e-15)
    assert curve['best']['recall'] == pytest.approx(2 / 3, abs=1e-15)
    assert curve['best']['f1'] == pytest.approx(2 / 3, abs=1e-15)
    assert (curve['num_gt'], curve['num_pred']) == (3, 4)


def test_tied_scores_form_one_threshold():
    # a threshold keeps both 0.9 detections or neither
    curve = pr_f1_curve(np.array([0.9, 0.9, 0.5]), np.array([False, True, True]), 2)
    np.testing.assert_array_equal(curve['threshold'], [0.9, 0.5])
    np.testing.assert_allclose(curve['precision'], [1 / 2, 2 / 3])
    np.testing.assert_allclose(curve['recall'], [1 / 2, 1])
    assert curve['best']['threshold'] == 0.5
    assert curve['best']['f1'] == pytest.approx(0.8)  # 2 * (2/3) / (5/3)


def test_equal_f1_picks_the_higher_threshold():
    # F1 = 2 TP / (kept + GT), 2 GTs; by score: TP, FP, FP, TP
    # thr 0.9: 2*1/(1+2) = 2/3; 0.8: 2/4; 0.7: 2/5; 0.6: 2*2/(4+2) = 2/3 -> tie, keep 0.9
    curve = pr_f1_curve(np.array([0.9, 0.8, 0.7, 0.6]), np.array([True, False, False, True]), 2)
    np.testing.assert_allclose(curve['f1'], [2 / 3, 1 / 2, 2 / 5, 2 / 3])
    assert curve['f1'][0] == curve['f1'][3]
    assert curve['best'] == dict(threshold=0.9, precision=1.0, recall=0.5, f1=curve['f1'][0])


def test_no_detections_and_no_ground_truth():
    empty = pr_f1_curve(np.zeros(0), np.zeros(0, bool), 5)
    assert empty['threshold'].shape == (0, )
    assert empty['best']['f1'] == 0.0 and empty['best']['recall'] == 0.0
    assert np.isnan(empty['best']['threshold'])
    no_gt = pr_f1_curve(np.array([0.3, 0.2]), np.array([False, False]), 0)
    np.testing.assert_array_equal(no_gt['recall'], [0, 0])
    np.testing.assert_array_equal(no_gt['precision'], [0, 0])
    assert no_gt['best']['f1'] == 0.0 and no_gt['best']['threshold'] == 0.3


def test_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match='scores has 2 entries but is_tp has 3'):
        pr_f1_curve(np.zeros(2), np.zeros(3, bool), 1)
    with pytest.raises(ValueError, match='num_gt'):
        pr_f1_curve(np.zeros(2), np.zeros(2, bool), -1)


def test_save_pr_curve_writes_png_and_json(tmp_path):
    curve = pr_f1_curve(np.array([0.7, 0.9, 0.6, 0.8]), np.array([True, True, False, False]), 3)
    paths = save_pr_curve(curve, str(tmp_path / 'sub' / 'run.box_pr'), 'boxes')
    assert paths == dict(json=str(tmp_path / 'sub' / 'run.box_pr.json'),
                         png=str(tmp_path / 'sub' / 'run.box_pr.png'))
    assert (tmp_path / 'sub' / 'run.box_pr.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    record = json.loads((tmp_path / 'sub' / 'run.box_pr.json').read_text())
    assert record['best'] == curve['best']
    assert record['curve']['threshold'] == [0.9, 0.8, 0.7, 0.6]
    assert (record['num_gt'], record['num_pred'], record['title']) == (3, 4, 'boxes')


def test_save_pr_curve_subsamples_but_keeps_best(tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=500)
    curve = pr_f1_curve(scores, rng.uniform(size=500) < scores, 300)
    save_pr_curve(curve, str(tmp_path / 'c'), 'many', max_points=50)
    record = json.loads((tmp_path / 'c.json').read_text())
    assert 50 <= len(record['curve']['threshold']) <= 51
    assert curve['best']['threshold'] in record['curve']['threshold']


def test_save_pr_curve_without_detections_writes_strict_json(tmp_path):
    curve = pr_f1_curve(np.zeros(0), np.zeros(0, bool), 2)
    save_pr_curve(curve, str(tmp_path / 'none'), 'nothing')
    text = (tmp_path / 'none.json').read_text()
    assert 'NaN' not in text
    assert json.loads(text)['best']['threshold'] is None
    assert (tmp_path / 'none.png').exists()
