"""DeferredRuntimeInfoHook: the same message hub, log lines' values, ``scalars.json`` and
checkpointed history as MMEngine's RuntimeInfoHook, with the losses pushed only when read."""
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import DataLoader

import turtle_plugin  # noqa: F401
from turtle_plugin.engine.hooks import DeferredRuntimeInfoHook

REPO = Path(__file__).resolve().parents[2]
TIMES = ('time', 'data_time', 'train/time', 'train/data_time', 'val/time', 'val/data_time')


class Toy(BaseModel):
    """Two losses that change every step, plus log variables of every kind a ``train_step``
    may return: an int tensor, a half tensor, a Python float, a numpy scalar."""

    def __init__(self, bad_at=None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        self.steps, self.bad_at = 0, bad_at

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        x = torch.stack(inputs)  # (B, 2)
        if mode == 'loss':
            return dict(loss_a=(self.weight * x).sum().square() / 7,
                        loss_b=(self.weight - x).abs().mean())
        return [dict(pred=v) for v in (self.weight * x).sum(1).detach()]

    def train_step(self, data, optim_wrapper):
        log_vars = super().train_step(data, optim_wrapper)
        self.steps += 1
        log_vars['num_steps'] = torch.tensor(self.steps)  # int64: logged as an int
        log_vars['half'] = log_vars['loss_b'].half()
        log_vars['ratio'] = 1.0 / self.steps
        log_vars['np_ratio'] = np.float32(0.5 / self.steps)
        if self.steps == self.bad_at:
            log_vars['bad'] = torch.ones(2)  # not a scalar: MMEngine's hub refuses it
        return log_vars


class MeanPred(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results += [float(s['pred']) for s in data_samples]

    def compute_metrics(self, results):
        return dict(mean_pred=sum(results) / len(results))


def _loader(n, seed=0):
    data = list(torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)))
    return DataLoader(data, batch_size=2, collate_fn=lambda b: dict(inputs=b))


def _runner(tmp_path, runtime_info, name, logger_interval=3, by_epoch=True, checkpoint=None,
            custom_hooks=(), model=None):
    """7 samples in batches of 2 (4 iterations an epoch, the last one short), 3 epochs or 10
    iterations, a validation every 2 epochs / 4 iterations, window of 3 for smoothed values."""
    train_cfg = (dict(by_epoch=True, max_epochs=3, val_interval=2) if by_epoch
                 else dict(by_epoch=False, max_iters=10, val_interval=4))
    logger = None if logger_interval is None else dict(type='LoggerHook',
                                                       interval=logger_interval)
    return Runner(
        model=model or Toy(), work_dir=str(tmp_path / name),
        experiment_name=f'{name}_{tmp_path.name}',
        train_dataloader=_loader(7), val_dataloader=_loader(4, seed=1), train_cfg=train_cfg,
        val_cfg=dict(), val_evaluator=[MeanPred()],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        default_hooks=dict(runtime_info=runtime_info, logger=logger, checkpoint=checkpoint),
        custom_hooks=list(custom_hooks),
        log_processor=dict(window_size=3, by_epoch=by_epoch), log_level=logging.WARNING,
        randomness=dict(seed=0), default_scope='mmdet')  # the plugin's hooks' scope


def _scalars_json(runner):
    """``vis_data/scalars.json`` lines, the timings (which differ from run to run) as keys
    without values: every other value, and the order of all keys."""
    path = Path(runner.log_dir) / 'vis_data' / 'scalars.json'
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [[k if k in TIMES else (k, v) for k, v in line.items()] for line in lines]


def _history(scalars):
    """Each scalar's values and counts in the hub's key order (the timings: the key only)."""
    return [key if key in TIMES else (key, buffer.data[0].tolist(), buffer.data[1].tolist())
            for key, buffer in scalars.items()]


def _run_both(tmp_path, **kwargs):
    runs = {}
    for name, hook in (('mmengine', dict(type='RuntimeInfoHook')),
                       ('deferred', dict(type='DeferredRuntimeInfoHook',
                                         max_deferred_iters=kwargs.pop('max_deferred', 1000)))):
        runner = _runner(tmp_path, hook, name, **kwargs)
        runner.train()
        runs[name] = runner
    return runs['mmengine'], runs['deferred']


@pytest.mark.parametrize('logger_interval, by_epoch', [
    (1, True), (3, True), (50, True),  # every iteration; across epoch ends; only at epoch ends
    (3, False), (50, False)])  # iteration-based: the last iteration only
def test_logs_and_hub_match_mmengine_runtime_info_hook(tmp_path, logger_interval, by_epoch):
    ref, ours = _run_both(tmp_path, logger_interval=logger_interval, by_epoch=by_epoch)
    assert isinstance(ours.hooks[0], DeferredRuntimeInfoHook)
    assert _history(ours.message_hub.log_scalars) == _history(ref.message_hub.log_scalars)
    assert _scalars_json(ours) == _scalars_json(ref)
    first_line = _scalars_json(ours)[0]  # a training line: the comparison is not vacuous
    assert [item[0] for item in first_line if item[0].startswith('loss')] == [
        'loss', 'loss_a', 'loss_b']
    # every iteration's value, in order
    num_steps = ref.message_hub.get_scalar('train/num_steps').data[0]
    assert num_steps.tolist() == list(range(1, 13 if by_epoch else 11))


def test_checkpoints_hold_the_same_history(tmp_path):
    """A checkpoint every 5 iterations (not a logging iteration) saves every loss so far."""
    checkpoint = dict(type='CheckpointHook', interval=5, by_epoch=False)
    ref, ours = _run_both(tmp_path, logger_interval=3, checkpoint=checkpoint)
    for step in (5, 10):
        saved = [torch.load(Path(r.work_dir) / f'iter_{step}.pth', weights_only=False)
                 ['message_hub']['log_scalars'] for r in (ref, ours)]
        assert _history(saved[1]) == _history(saved[0])
        assert len(saved[1]['train/loss_a'].data[0]) == step


class HubProbe(Hook):
    """How many ``train/loss`` values the hub holds after each iteration's runtime hook."""
    priority = 'HIGH'

    def __init__(self):
        self.sizes = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.sizes.append(len(runner.message_hub.get_scalar('train/loss').data[0]))


@pytest.mark.parametrize('logger_interval, max_deferred, expected', [
    # first iteration at once (new keys); then at batches 3 of 4 (interval) and 4 (epoch end)
    (3, 1000, [1, 1, 3, 4, 4, 4, 7, 8, 8, 8, 11, 12]),
    # no logger: epoch ends, and every 2 kept iterations
    (None, 2, [1, 1, 3, 4, 4, 6, 6, 8, 8, 10, 10, 12])])
def test_pushes_when_the_logger_reads_or_the_bound_is_reached(tmp_path, logger_interval,
                                                              max_deferred, expected):
    probe = HubProbe()
    runner = _runner(tmp_path, dict(type='DeferredRuntimeInfoHook',
                                    max_deferred_iters=max_deferred), 'probe',
                     logger_interval=logger_interval, custom_hooks=[probe])
    runner.train()
    assert probe.sizes == expected


def test_a_value_that_is_no_scalar_fails_at_its_iteration(tmp_path):
    for name, hook in (('mmengine', dict(type='RuntimeInfoHook')),
                       ('deferred', dict(type='DeferredRuntimeInfoHook'))):
        model = Toy(bad_at=3)
        runner = _runner(tmp_path, hook, name, model=model)
        with pytest.raises(AssertionError):
            runner.train()
        assert model.steps == 3
        # the iterations before it, and its values before the bad one, are in the hub
        assert runner.message_hub.get_scalar('train/loss').data[0].shape == (3, )


def test_max_deferred_iters_must_be_positive():
    with pytest.raises(ValueError, match='max_deferred_iters must be a positive int, got 0'):
        DeferredRuntimeInfoHook(max_deferred_iters=0)


def test_configs_use_it():
    cfg = Config.fromfile(REPO / 'configs' / 'turtle_kpt.py')
    assert cfg.default_hooks.runtime_info == dict(type='DeferredRuntimeInfoHook')


@pytest.mark.slow
def test_a_config_logs_the_same_as_with_mmengine_runtime_info_hook(tmp_path):
    """tiger_kpt_tiny.py, 2 epochs of 4 batches with a validation after each, a log line
    after batches 3 and 4 of each epoch, smoothed over 4 iterations: the same training and
    validation lines in ``scalars.json`` and the same hub histories."""
    from conftest import few_iterations
    runs = []
    for name in ('RuntimeInfoHook', 'DeferredRuntimeInfoHook'):
        cfg = Config.fromfile(REPO / 'configs' / 'tiger_kpt_tiny.py')
        cfg.work_dir = str(tmp_path / name)
        cfg.merge_from_dict(few_iterations(train_images=8, batch_size=2, val_images=2, epochs=2))
        cfg.merge_from_dict({'default_hooks.logger.interval': 3,
                             'default_hooks.logger.ignore_last': False,
                             'log_processor.window_size': 4,
                             # a visualiser (and scalars.json) of its own, not the first run's
                             'visualizer.name': f'visualizer_{name}_{tmp_path.name}',
                             'default_hooks.runtime_info': dict(type=name),
                             'experiment_name': f'{name}_{tmp_path.name}'})
        runner = Runner.from_cfg(cfg)
        runner.train()
        runs.append(runner)
    ref, ours = runs
    assert isinstance(ours.hooks[0], DeferredRuntimeInfoHook)
    assert _history(ours.message_hub.log_scalars) == _history(ref.message_hub.log_scalars)
    logged = _scalars_json(ref)
    assert [line[-1] for line in logged] == [('step', s) for s in (3, 4, 1, 7, 8, 2)]
    assert _scalars_json(ours) == logged
