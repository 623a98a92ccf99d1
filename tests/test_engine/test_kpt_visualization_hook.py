"""KptVisualizationHook hands MMPose's hook only the instances scoring at least score_thr,
and leaves the evaluator's samples alone. (The drawings themselves: tests/test_tools/
test_visualization.py.)"""
from unittest.mock import MagicMock

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData
from mmengine.visualization import Visualizer
from mmpose.engine.hooks import PoseVisualizationHook
from mmpose.structures import PoseDataSample

from turtle_plugin.engine.hooks import KptVisualizationHook


@pytest.fixture(autouse=True)
def _current_visualizer():
    saved = Visualizer._instance_dict.copy()
    Visualizer.get_instance('test_kpt_visualization_hook')
    yield
    Visualizer._instance_dict.clear()
    Visualizer._instance_dict.update(saved)


def _sample(scores, key='bbox_scores', as_tensor=False):
    n = len(scores)
    values = torch.tensor(scores) if as_tensor else np.array(scores, np.float32)
    preds = InstanceData(bboxes=np.arange(4 * n, dtype=np.float32).reshape(n, 4),
                         keypoints=np.zeros((n, 3, 2), np.float32))
    preds.set_field(values, key)
    return PoseDataSample(pred_instances=preds, metainfo=dict(img_path='a.jpg'))


@pytest.mark.parametrize('key', ['bbox_scores', 'scores'])
@pytest.mark.parametrize('as_tensor', [False, True])
def test_keeps_instances_reaching_score_thr(monkeypatch, key, as_tensor):
    seen = {}
    for stage in ('val', 'test'):
        monkeypatch.setattr(PoseVisualizationHook, f'after_{stage}_iter',
                            lambda self, runner, i, batch, outputs, stage=stage:
                            seen.__setitem__(stage, outputs))
    hook = KptVisualizationHook(enable=True, score_thr=0.3)
    outputs = [_sample([0.9, 0.05, 0.3, 0.29], key, as_tensor), _sample([0.1], key, as_tensor)]
    for stage in ('val', 'test'):
        getattr(hook, f'after_{stage}_iter')(MagicMock(), 0, {}, outputs)
        first, second = seen[stage]
        # 0.9 and 0.3 (>= thr) stay, in order, with their boxes; nothing of the second image
        assert np.asarray(first.pred_instances.get(key)).tolist() == pytest.approx([0.9, 0.3])
        assert first.pred_instances.bboxes.tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]
        assert first.pred_instances.keypoints.shape == (2, 3, 2)
        assert len(second.pred_instances) == 0
        assert first.img_path == 'a.jpg'
    # the evaluator's samples keep all their instances
    assert [len(s.pred_instances) for s in outputs] == [4, 1]


def test_disabled_hook_draws_nothing(monkeypatch):
    called = MagicMock()
    monkeypatch.setattr(PoseVisualizationHook, 'after_test_iter', called)
    KptVisualizationHook(enable=False).after_test_iter(MagicMock(), 0, {}, [_sample([0.9])])
    called.assert_not_called()
