"""YOLOv7 parameter groups, weight-decay scaling and the warm-up / cosine schedule."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from turtle_plugin.engine.hooks.yolov7_param_scheduler_hook import YOLOv7ParamSchedulerHook
from turtle_plugin.engine.optimizers import (YOLOv7OptimWrapperConstructor,
                                             yolov7_param_groups)


class _Implicit(nn.Module):

    def __init__(self, channels):
        super().__init__()
        self.implicit = nn.Parameter(torch.zeros(1, channels, 1, 1))


def _model():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1), _Implicit(2))


def test_param_groups_follow_the_original():
    model = _model()
    groups = yolov7_param_groups(model)
    conv0, bn, conv1, implicit = model
    assert [p is q for p, q in zip(groups['decay'], [conv0.weight, conv1.weight])] == [True, True]
    assert {id(p) for p in groups['no_decay']} == {id(bn.weight), id(implicit.implicit)}
    assert {id(p) for p in groups['bias']} == {id(bn.bias), id(conv1.bias)}
    n_params = sum(len(v) for v in groups.values())
    assert n_params == len(list(model.parameters()))


@pytest.mark.parametrize('batch, accumulate, expected', [(8, 8, 5e-4), (16, 1, 1.25e-4),
                                                         (64, 1, 5e-4)])
def test_weight_decay_scaled_by_total_batch(batch, accumulate, expected):
    constructor = YOLOv7OptimWrapperConstructor(
        dict(type='OptimWrapper', accumulative_counts=accumulate,
             optimizer=dict(type='SGD', lr=0.01, momentum=0.937, nesterov=True, weight_decay=5e-4)),
        paramwise_cfg=dict(batch_size_per_gpu=batch))
    wrapper = constructor(_model())
    names = [g['name'] for g in wrapper.optimizer.param_groups]
    assert names == ['no_decay', 'decay', 'bias']
    decays = [g['weight_decay'] for g in wrapper.optimizer.param_groups]
    assert decays == pytest.approx([0.0, expected, 0.0])
    assert wrapper.optimizer.param_groups[1]['nesterov'] is True


def test_unknown_paramwise_key_is_an_error():
    with pytest.raises(KeyError, match='norm_decay_mult'):
        YOLOv7OptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=0.01)), dict(norm_decay_mult=0.0))


def _fake_runner(iters_per_epoch=10, max_epochs=5, batch_size=1, paramwise_cfg=None):
    constructor = YOLOv7OptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.937, weight_decay=5e-4)),
        paramwise_cfg)
    wrapper = constructor(_model())
    loader = DataLoader(range(iters_per_epoch * batch_size), batch_size=batch_size)
    return SimpleNamespace(
        optim_wrapper=wrapper, max_epochs=max_epochs, train_dataloader=loader, epoch=0, iter=0)


def _decay(runner):
    return {g['name']: g for g in runner.optim_wrapper.optimizer.param_groups}['decay'][
        'weight_decay']


@pytest.mark.parametrize('paramwise_cfg', [None, dict(batch_size_per_gpu=8)])
def test_weight_decay_follows_the_train_dataloader(paramwise_cfg, monkeypatch):
    """In a run, the batch that scales the weight decay is the train dataloader's, whatever the
    constructor was told (a stale batch_size_per_gpu of 8 here): 5e-4 * 16 / 64, and with 2
    processes 5e-4 * 32 / 64."""
    import turtle_plugin.engine.optimizers.yolov7_optim_constructor as constructor_module
    runner = _fake_runner(batch_size=16, paramwise_cfg=paramwise_cfg)
    assert _decay(runner) == pytest.approx(5e-4 if paramwise_cfg is None else 5e-4 * 8 / 64)
    YOLOv7ParamSchedulerHook().before_train(runner)
    assert _decay(runner) == pytest.approx(1.25e-4)
    monkeypatch.setattr(constructor_module, 'get_world_size', lambda: 2)
    YOLOv7ParamSchedulerHook().before_train(runner)
    assert _decay(runner) == pytest.approx(2.5e-4)


def test_weight_decay_left_alone_without_a_nominal_decay():
    """Groups resumed from a checkpoint written before the constructor kept its nominal decay
    keep the decay they were saved with."""
    runner = _fake_runner(batch_size=16, paramwise_cfg=dict(batch_size_per_gpu=8))
    for group in runner.optim_wrapper.param_groups:
        group.pop('nominal_weight_decay', None)
    YOLOv7ParamSchedulerHook().before_train(runner)
    assert _decay(runner) == pytest.approx(5e-4 * 8 / 64)


def test_cosine_factor_matches_one_cycle():
    hook = YOLOv7ParamSchedulerHook(lr_factor=0.1)
    hook.max_epochs = 5
    # one_cycle(1, 0.1, 4): ((1 - cos(x*pi/4)) / 2) * (0.1 - 1) + 1
    for epoch in range(5):
        expected = ((1 - math.cos(epoch * math.pi / 4)) / 2) * (0.1 - 1) + 1
        assert hook.lf(epoch) == pytest.approx(expected)
    assert hook.lf(0) == 1.0 and hook.lf(4) == pytest.approx(0.1)
    linear = YOLOv7ParamSchedulerHook(scheduler_type='linear', lr_factor=0.1)
    linear.max_epochs = 5
    assert linear.lf(2) == pytest.approx(0.55)


def test_warmup_interpolates_lr_and_momentum():
    runner = _fake_runner(iters_per_epoch=10)
    hook = YOLOv7ParamSchedulerHook(warmup_epochs=2, min_warmup_iters=5)
    hook.before_train(runner)
    assert hook.warmup_iters == 20
    groups = {g['name']: g for g in runner.optim_wrapper.optimizer.param_groups}

    hook.before_train_epoch(runner)
    hook.before_train_iter(runner, 0)
    assert groups['bias']['lr'] == pytest.approx(0.1)
    assert groups['decay']['lr'] == 0.0 and groups['no_decay']['lr'] == 0.0
    assert groups['decay']['momentum'] == pytest.approx(0.8)

    runner.iter, runner.epoch = 10, 1  # half-way through warm-up, epoch 1 of 5
    hook.before_train_epoch(runner)
    hook.before_train_iter(runner, 0)
    target = 0.01 * hook.lf(1)
    assert groups['decay']['lr'] == pytest.approx(target / 2)
    assert groups['bias']['lr'] == pytest.approx((0.1 + target) / 2)
    assert groups['decay']['momentum'] == pytest.approx((0.8 + 0.937) / 2)

    runner.iter, runner.epoch = 30, 3  # after warm-up: plain schedule
    hook.before_train_epoch(runner)
    hook.before_train_iter(runner, 0)
    for group in groups.values():
        assert group['lr'] == pytest.approx(0.01 * hook.lf(3))
