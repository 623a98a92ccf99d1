"""Overfit check: the tiny keypoint model learns 8 real tiger frames to OKS AP >= 0.9 with the
recipe users train.

The model (YOLOv5 assignment, OKS + L1 keypoint losses) and the optimizer (SGD with YOLOv7's
parameter groups, lr 0.01, momentum 0.937, nesterov, weight decay scaled to the batch of 8) are
the ones ``configs/tiger_kpt_tiny.py`` builds; only augmentation is off (one fixed batch, as the
evaluation pipeline loads it) and the lr warm-up is skipped (150 steps are shorter than it).
After training the BN running statistics are re-estimated exactly on that batch ("precise BN"):
after so few steps BN's running averages (momentum 0.03) still lag the weights, and eval-mode
outputs would measure that lag rather than the model. Evaluation is the plugin's
KptBoxCocoMetric on the same frames, in original image coordinates.
"""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

REPO = Path(__file__).resolve().parents[2]
STEPS = 150


@pytest.mark.slow
def test_tiny_keypoint_model_overfits_eight_tiger_frames_with_the_default_recipe():
    from mmpose.registry import DATASETS, MODELS
    cfg = Config.fromfile(REPO / 'configs' / 'tiger_kpt_tiny.py')
    assert cfg.optim_wrapper.optimizer.type == 'SGD'  # what this test guards
    pack = cfg.val_pipeline[-1]
    pipeline = [p for p in cfg.val_pipeline if p.type != 'PackPoseInputs'] + [
        dict(type='GenerateTarget',
             encoder=dict(type='YOLOXPoseAnnotationProcessor', input_size=(256, 256))),
        pack]
    with DefaultScope.overwrite_default_scope('mmpose'):
        dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, pipeline=pipeline, indices=8,
                                      test_mode=True))
        samples = [dataset[i] for i in range(8)]
        batch = dict(inputs=[s['inputs'] for s in samples],
                     data_samples=[s['data_samples'] for s in samples])
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        optim_cfg = copy.deepcopy(cfg.optim_wrapper)
        optim_cfg.paramwise_cfg.batch_size_per_gpu = len(samples)  # as the hook sets it
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
        decay = next(g for g in optim_wrapper.param_groups if g['name'] == 'decay')
        assert decay['weight_decay'] == pytest.approx(5e-4 * 8 / 64)
        model.train()
        for _ in range(STEPS):
            losses = model(**model.data_preprocessor(batch, training=True), mode='loss')
            assert 'loss_kpt_aux' in losses  # the default recipe's L1 keypoint term
            optim_wrapper.update_params(sum(losses.values()))

        norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average: one pass gives the batch's statistics
        with torch.no_grad():
            model(**model.data_preprocessor(batch, training=True), mode='tensor')
        model.eval()
        with torch.no_grad():
            results = model(**model.data_preprocessor(copy.deepcopy(batch), training=False),
                            mode='predict')
        evaluator = Evaluator(dict(type='KptBoxCocoMetric', score_mode='bbox', nms_mode='none'))
        evaluator.dataset_meta = dataset.metainfo
        evaluator.process(results)
        metrics = evaluator.evaluate(len(samples))
    assert metrics['coco/AP'] >= 0.9, metrics
    assert metrics['coco/bbox_mAP_50'] >= 0.9, metrics
