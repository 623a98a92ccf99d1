"""DivergenceCheckHook: a run whose weights turn NaN stops at the end of that epoch, names the
tensor and the loss, and leaves the checkpoints before it as they were."""
import json
import logging
import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import DataLoader

import turtle_plugin  # noqa: F401
from turtle_plugin.engine.hooks import (DIVERGED_FILE, DivergenceCheckHook, TrainingDiverged,
                                       first_non_finite)


class Toy(BaseModel):
    """A weight and a BatchNorm; from step ``nan_at`` (1-based) on, ``loss_b`` is multiplied by
    NaN (its gradient turns the weight NaN); ``loss_const`` is a NaN with no gradient at step
    ``const_nan_at`` (the total loss is NaN, the weights stay finite, as when a mixed-precision
    optimizer skips a step)."""

    def __init__(self, nan_at=None, const_nan_at=None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        self.bn = torch.nn.BatchNorm1d(2)
        self.steps, self.nan_at, self.const_nan_at = 0, nan_at, const_nan_at

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        x = self.bn(torch.stack(inputs))  # (B, 2)
        if mode != 'loss':
            return [dict(pred=v) for v in (self.weight * x).sum(1).detach()]
        self.steps += 1
        scale = math.nan if self.nan_at is not None and self.steps >= self.nan_at else 1.0
        const = math.nan if self.steps == self.const_nan_at else 0.0
        return dict(loss_a=(self.weight * x).sum().square() / 7,
                    loss_b=(self.weight - x).abs().mean() * scale,
                    loss_const=torch.tensor(const))


def _loader(n=8, seed=0):
    data = list(torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)))
    return DataLoader(data, batch_size=2, collate_fn=lambda b: dict(inputs=b))


def _runner(tmp_path, model, check=dict(type='DivergenceCheckHook'), checkpoint=None,
            custom_hooks=()):
    """8 samples in batches of 2: 4 iterations an epoch, 3 epochs, a checkpoint every epoch
    keeping one (the default training configs keep three)."""
    checkpoint = checkpoint or dict(type='CheckpointHook', interval=1, max_keep_ckpts=1)
    return Runner(
        model=model, work_dir=str(tmp_path), experiment_name=f'div_{tmp_path.name}',
        train_dataloader=_loader(), train_cfg=dict(by_epoch=True, max_epochs=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=checkpoint, logger=None,
                           **(dict(divergence_check=check) if check else {})),
        custom_hooks=list(custom_hooks), log_level=logging.WARNING,
        randomness=dict(seed=0), default_scope='mmdet')


def _finite(path):
    state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
    return first_non_finite(state.items()) is None


def test_first_non_finite_names_the_first_bad_tensor_in_order():
    tensors = [('a', torch.zeros(3)), ('count', torch.tensor(7)),  # integers are skipped
               ('b', torch.tensor([1.0, math.inf])), ('c', torch.tensor([math.nan]))]
    assert first_non_finite(tensors) == 'b'
    assert first_non_finite(tensors[2:][::-1]) == 'c'
    assert first_non_finite(tensors[:2]) is None
    assert first_non_finite([('h', torch.tensor([-math.inf]).half())]) == 'h'
    assert first_non_finite([]) is None


def test_a_diverged_run_stops_at_the_epoch_end_and_keeps_the_last_good_checkpoint(tmp_path):
    # step 6 is the second iteration of epoch 2; its NaN gradient makes the weight NaN
    runner = _runner(tmp_path, Toy(nan_at=6))
    with pytest.raises(TrainingDiverged) as error:
        runner.train()
    message = str(error.value)
    assert 'after epoch 2 (8 of 12 iterations done), first model: weight;' in message
    assert ('the loss was first not finite at iteration 6 (loss, loss_b), in 3 iteration(s) '
            'this epoch') in message
    assert f'the last checkpoint written is {tmp_path / "epoch_1.pth"};' in message
    # epoch 2's checkpoint was never written, so max_keep_ckpts=1 did not delete epoch 1's
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth']
    assert _finite(tmp_path / 'epoch_1.pth')
    # the same for scripts (bench/accuracy.py reads it): on the error and in the work dir
    record = dict(epoch=2, iterations_done=8, non_finite='model: weight',
                  first_non_finite_loss=dict(iteration=6, losses=['loss', 'loss_b']),
                  resume_from=str(tmp_path / 'epoch_1.pth'))
    assert error.value.record == record
    assert json.loads((tmp_path / DIVERGED_FILE).read_text()) == record


def test_a_run_that_trains_removes_an_earlier_divergence_record(tmp_path):
    (tmp_path / DIVERGED_FILE).write_text('{"epoch": 2}\n')  # say, before a resume
    _runner(tmp_path, Toy()).train()
    assert not (tmp_path / DIVERGED_FILE).exists()


def test_without_the_hook_the_run_trains_on_and_keeps_only_nan_checkpoints(tmp_path):
    # what the hook prevents: the test above is not vacuous
    _runner(tmp_path, Toy(nan_at=6), check=None).train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_3.pth']
    assert not _finite(tmp_path / 'epoch_3.pth')


def test_interval_stops_at_the_iteration(tmp_path):
    runner = _runner(tmp_path, Toy(nan_at=6), check=dict(type='DivergenceCheckHook', interval=1))
    with pytest.raises(TrainingDiverged, match=r'after iteration 6 \(6 of 12 iterations done\), '
                                               r'first model: weight; the loss was first not '
                                               r'finite at iteration 6 \(loss, loss_b\), in 1 '):
        runner.train()


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_non_finite_loss_with_finite_weights_warns_and_trains_on(tmp_path):
    runner = _runner(tmp_path, Toy(const_nan_at=7))
    records = _Records()
    runner.logger.addHandler(records)  # MMEngine's loggers do not reach pytest's caplog
    runner.train()
    warnings = [m for m in records.messages if 'DivergenceCheckHook' in m]
    assert warnings == ['DivergenceCheckHook: in epoch 2 the loss was not finite in 1 '
                        'iteration(s), first at iteration 7 (loss, loss_const); the weights '
                        'stayed finite (a mixed-precision optimizer skips such steps)']
    assert _finite(tmp_path / 'epoch_3.pth')


class _AtIteration(Hook):
    """Call ``action(runner)`` after iteration ``at`` (1-based), at ``priority``."""

    def __init__(self, at, action, priority):
        self.at, self.action, self.priority = at, action, priority

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            self.action(runner)


def _corrupt_ema(runner):
    """An infinity in the EMA model's BatchNorm variance."""
    ema = next(h for h in runner.hooks if type(h).__name__ == 'EMAHook')
    ema.ema_model.module.bn.running_var[1] = math.inf


def test_the_ema_model_is_checked(tmp_path):
    runner = _runner(tmp_path, Toy(), custom_hooks=[
        dict(type='EMAHook', momentum=0.5, update_buffers=True),
        _AtIteration(10, _corrupt_ema, 'NORMAL')])
    with pytest.raises(TrainingDiverged, match=r'after epoch 3 \(12 of 12 .*first ema: '
                                               r'bn.running_var; no non-finite loss'):
        runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_2.pth']


def test_iteration_checkpoints_are_checked_before_the_old_one_is_deleted(tmp_path):
    # a checkpoint every 2 iterations; MMEngine deletes the oldest kept one before it saves, so
    # the weights are checked before the save after iteration 6 (NaN from iteration 5)
    runner = _runner(tmp_path, Toy(nan_at=5), checkpoint=dict(
        type='CheckpointHook', interval=2, by_epoch=False, max_keep_ckpts=1))
    with pytest.raises(TrainingDiverged, match=r'after iteration 6 \(6 of 12 iterations done\), '
                                               r'first model: weight; .* in 2 iteration\(s\) .*'
                                               r'the last checkpoint written is .*iter_4.pth;'):
        runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_4.pth']
    assert _finite(tmp_path / 'iter_4.pth')


def test_any_other_checkpoint_is_checked_and_not_written(tmp_path):
    # a user's hook saving after iteration 6, after every default hook
    runner = _runner(tmp_path, Toy(nan_at=5), custom_hooks=[_AtIteration(
        6, lambda runner: runner.save_checkpoint(runner.work_dir, 'mine.pth'), 'VERY_LOW')])
    with pytest.raises(TrainingDiverged, match=r'in the checkpoint to be saved \(5 of 12 '
                                               r'iterations done\), first state_dict: weight;'):
        runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth']


def test_invalid_interval():
    with pytest.raises(ValueError, match='interval must be None or a positive int, got 0'):
        DivergenceCheckHook(interval=0)


def _rank(rank, store, out):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=2)
    model = torch.nn.BatchNorm1d(2)
    if rank == 1:  # a buffer no gradient shares: only this rank's copy is bad
        model.running_mean[0] = math.nan
    runner = SimpleNamespace(model=model, hooks=[], iter=4, epoch=0, max_iters=8,
                             work_dir=os.path.dirname(out))
    try:
        DivergenceCheckHook().after_train_epoch(runner)
        result = 'trained on'
    except TrainingDiverged as error:
        result = str(error).split(';')[0]
    Path(f'{out}.{rank}').write_text(result)
    dist.destroy_process_group()


def test_every_rank_stops_when_one_rank_diverges(tmp_path):
    torch.multiprocessing.start_processes(
        _rank, args=(tmp_path / 'store', str(tmp_path / 'result')), nprocs=2,
        start_method='fork')
    prefix = 'training diverged: a weight is not finite after epoch 1 (4 of 8 iterations done)'
    assert (tmp_path / 'result.0').read_text() == f'{prefix}, first on another rank'
    assert (tmp_path / 'result.1').read_text() == f'{prefix}, first model: running_mean'
