"""ProgressBarHook: one bar per training epoch, validation and test run."""
import io
import logging
import re

import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import DataLoader

import turtle_plugin  # noqa: F401
from turtle_plugin.engine.hooks import ProgressBarHook


class Linear(BaseModel):

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        x = torch.stack(inputs)
        if mode == 'loss':
            return dict(loss=(self.weight * x).sum())
        return [dict(pred=v) for v in (self.weight * x).detach()]


class Count(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results += [1] * len(data_samples)

    def compute_metrics(self, results):
        return dict(count=len(results))


def _loader(n):
    return DataLoader([torch.ones(1)] * n, batch_size=2, collate_fn=lambda b: dict(inputs=b))


class Tty(io.StringIO):

    def isatty(self):
        return True


def _runner(tmp_path, hook):
    return Runner(
        model=Linear(), work_dir=str(tmp_path),
        train_dataloader=_loader(6), val_dataloader=_loader(4), test_dataloader=_loader(2),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=2), val_cfg=dict(),
        test_cfg=dict(), val_evaluator=[Count()], test_evaluator=[Count()],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)), custom_hooks=[hook],
        default_hooks=dict(logger=None, checkpoint=None), log_level=logging.WARNING,
        experiment_name=f'progress_{tmp_path.name}')


def _bars(text):
    """Final state of each bar: (completed, total) of the last redraw before each newline."""
    finals = []
    for line in text.split('\n')[:-1]:
        counts = re.findall(r'\] (\d+)/(\d+)', line)
        finals.append(tuple(map(int, counts[-1])))
    return finals


def test_draws_one_bar_per_epoch_validation_and_test(tmp_path):
    out = Tty()
    runner = _runner(tmp_path, ProgressBarHook(file=out))
    runner.train()
    runner.test()
    text = out.getvalue()
    # 2 training epochs of 3 batches, 1 validation (after epoch 2) of 2, 1 test of 1
    assert _bars(text) == [(3, 3), (3, 3), (2, 2), (1, 1)]
    # every redraw returns the cursor to the start of the line for the logger's next line
    assert text.count('\r[') == 3 + 3 + 2 + 1
    assert text.endswith('\n')


def test_auto_draws_only_on_a_terminal(tmp_path):
    out = io.StringIO()  # not a terminal: a log file, CI output
    _runner(tmp_path, ProgressBarHook(file=out)).train()
    assert out.getvalue() == ''
    forced = io.StringIO()
    _runner(tmp_path / 'forced', ProgressBarHook(enable=True, file=forced)).train()
    assert _bars(forced.getvalue()) == [(3, 3), (3, 3), (2, 2)]


def test_disabled_or_invalid():
    out = Tty()
    hook = ProgressBarHook(enable=False, file=out)
    assert not hook._active()
    with pytest.raises(ValueError, match="enable must be True, False or 'auto'"):
        ProgressBarHook(enable='yes')
