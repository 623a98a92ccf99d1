"""KptSigmaWarmupHook: hand-computed sigmas per epoch, exact on resume, restored after training."""
from types import SimpleNamespace

import pytest
import torch

from turtle_plugin.engine.hooks import KptSigmaWarmupHook
from turtle_plugin.models.heads import KptBranch
from turtle_plugin.registry import HOOKS

CONFIGURED = [0.05, 0.05, 0.09, 0.09]  # K = 4: 'uniform' starts at 0.25


def _runner(epoch=0, max_epochs=8):
    branch = KptBranch(4, 2, 3, loss_kpt=dict(type='YOLOPoseOKSLoss'),
                       loss_kpt_vis=dict(type='YOLOBCEWithLogitsLoss'), kpt_sigmas=CONFIGURED)
    return SimpleNamespace(model=SimpleNamespace(head=SimpleNamespace(kpt_branch=branch)),
                           epoch=epoch, max_epochs=max_epochs)


def _sigmas(runner):
    return runner.model.head.kpt_branch.kpt_sigmas.tolist()


def test_linear_from_uniform_to_the_configured_sigmas():
    hook = HOOKS.build(dict(type='KptSigmaWarmupHook', start='uniform', warmup_ratio=0.5))
    runner = _runner(max_epochs=8)
    hook.before_train(runner)
    assert hook.warmup_epochs == 4
    expected = {0: [0.25, 0.25, 0.25, 0.25],
                1: [0.2, 0.2, 0.21, 0.21],      # 0.25 + (s - 0.25) / 4
                2: [0.15, 0.15, 0.17, 0.17],
                4: CONFIGURED, 9: CONFIGURED}
    for epoch, sigmas in expected.items():
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        assert _sigmas(runner) == pytest.approx(sigmas), epoch
    hook.after_train(runner)  # validation and export after training use the configured ones
    assert _sigmas(runner) == pytest.approx(CONFIGURED)


def test_resumed_run_gets_the_same_sigmas():
    """The sigmas are not in checkpoints: a resumed run recomputes them from the epoch."""
    straight, runner = KptSigmaWarmupHook(start=0.1, warmup_ratio=0.1), _runner(max_epochs=100)
    straight.before_train(runner)
    for epoch in range(4):
        runner.epoch = epoch
        straight.before_train_epoch(runner)
    resumed, fresh = KptSigmaWarmupHook(start=0.1, warmup_ratio=0.1), _runner(3, 100)
    resumed.before_train(fresh)
    resumed.before_train_epoch(fresh)
    assert _sigmas(fresh) == _sigmas(runner) == pytest.approx([0.085, 0.085, 0.097, 0.097])


def test_bad_arguments_and_models_without_keypoints():
    with pytest.raises(ValueError, match="positive sigma or 'uniform'"):
        KptSigmaWarmupHook(start='wide')
    with pytest.raises(ValueError, match=r'warmup_ratio must be in \[0, 1\]'):
        KptSigmaWarmupHook(warmup_ratio=1.5)
    detector = SimpleNamespace(model=SimpleNamespace(head=SimpleNamespace(kpt_branch=None)),
                               max_epochs=8)
    with pytest.raises(ValueError, match='needs a model whose head has a keypoint branch'):
        KptSigmaWarmupHook().before_train(detector)


def test_ratio_zero_is_off():
    """warmup_ratio=0: the configured sigmas throughout, even on a model without keypoints."""
    hook, runner = KptSigmaWarmupHook(warmup_ratio=0), _runner()
    hook.before_train(runner)
    for epoch in (0, 3):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        assert _sigmas(runner) == pytest.approx(CONFIGURED)
    hook.after_train(runner)
    detector = SimpleNamespace(model=SimpleNamespace(head=SimpleNamespace(kpt_branch=None)),
                               epoch=0, max_epochs=8)
    for stage in (hook.before_train, hook.before_train_epoch, hook.after_train):
        stage(detector)


def test_sigmas_reach_the_loss():
    """The loss reads the buffer the hook writes: wider sigmas, higher OKS, lower loss."""
    hook, runner = KptSigmaWarmupHook(warmup_ratio=0.25), _runner(max_epochs=8)
    hook.before_train(runner)
    branch = runner.model.head.kpt_branch
    pred = torch.zeros(1, 4, 2)
    target = torch.full((1, 4, 2), 3.)
    visible = torch.ones(1, 4, dtype=torch.bool)
    area = torch.tensor([100.])
    losses = []
    for epoch in (0, 2):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        losses.append(branch.loss_kpt(pred, target, visible, area, branch.kpt_sigmas).item())
    assert losses[0] < losses[1]



@pytest.mark.parametrize('max_epochs, ratio, epochs', [
    (9, 0.5, 5), (45, 0.1, 5), (9, 0.25, 2), (10, 0.25, 3), (100, 0.5, 50), (300, 0.1, 30),
    (1, 0.1, 0)])
def test_warmup_and_close_mosaic_count_a_part_of_the_epochs_alike(max_epochs, ratio, epochs):
    """Both hooks take ``ratio * max_epochs`` rounded half up (0.5 of 9 = 4.5: 5), so a config
    that gives both the same ratio gets the same count from each (the warm-up at least 1)."""
    from turtle_plugin.engine.hooks import CloseMosaicHook
    hook = KptSigmaWarmupHook(warmup_ratio=ratio)
    hook.before_train(_runner(max_epochs=max_epochs))
    close = CloseMosaicHook([dict(type='LoadImage')], num_last_epochs=None, last_ratio=ratio)
    assert close.last_epochs(max_epochs) == epochs
    assert hook.warmup_epochs == max(1, epochs)
