"""Stop a training run whose weights turn NaN or infinite, before a checkpoint keeps them.

A non-finite loss (a too high learning rate, an overflow) turns every weight NaN at the next
optimizer step, and MMEngine trains on: every later epoch is wasted, every later checkpoint is
NaN, and ``max_keep_ckpts`` deletes the good ones as the NaN ones are written. This hook checks
the weights at the end of each epoch and before every checkpoint is written, and stops the run
with the epoch, the first non-finite tensor, where the loss turned and the last checkpoint to
resume from. mmdet's ``CheckInvalidLossHook`` reads the loss every ``interval`` iterations (a host
synchronisation each time) and stops without saying where; this hook reads nothing from the
device during an epoch.
"""
import json
import logging
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from mmengine.dist import all_reduce, is_distributed, is_main_process
from mmengine.hooks import CheckpointHook, EMAHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from turtle_plugin.registry import HOOKS

__all__ = ['DIVERGED_FILE', 'DivergenceCheckHook', 'TrainingDiverged', 'first_non_finite']

DIVERGED_FILE = 'diverged.json'  # in the work dir, when a run stopped on non-finite weights


class TrainingDiverged(RuntimeError):
    """Raised by :class:`DivergenceCheckHook` when the weights are no longer finite.

    ``record`` holds what the message says, as ``diverged.json`` in the work dir does: the
    epoch (1-based) and the iterations done, the first non-finite tensor, the first iteration
    whose loss was not finite and its losses, the checkpoint to resume from."""

    def __init__(self, message: str, record: dict) -> None:
        super().__init__(message)
        self.record = record


def first_non_finite(named_tensors: Iterable[Tuple[str, torch.Tensor]]) -> Optional[str]:
    """The name of the first floating-point tensor with a NaN or an infinity, or None.

    One device-to-host copy per device the tensors live on; integer tensors (BatchNorm's
    ``num_batches_tracked``, counters) are skipped.
    """
    by_device: Dict[torch.device, List[Tuple[int, torch.Tensor]]] = {}
    names = []
    for name, tensor in named_tensors:
        if torch.is_tensor(tensor) and (tensor.is_floating_point() or tensor.is_complex()):
            by_device.setdefault(tensor.device, []).append(
                (len(names), torch.isfinite(tensor.detach()).all()))
            names.append(name)
    bad = []
    for flags in by_device.values():
        finite = torch.stack([flag for _, flag in flags]).tolist()
        bad += [position for (position, _), ok in zip(flags, finite) if not ok]
    return names[min(bad)] if bad else None


@HOOKS.register_module()
class DivergenceCheckHook(Hook):
    """Stop training when a weight or a buffer is NaN or infinite; never save such a checkpoint.

    * At the end of every training epoch (before the checkpoint and the validation of that
      epoch), and every ``interval`` iterations when given (for iteration-based loops), the
      model's parameters and buffers, and the EMA model's when an ``EMAHook`` runs, are checked.
      Under distributed training every rank checks its own copy and the ranks agree on the
      result (one ``all_reduce`` of one number), so all of them stop together.
    * After each iteration an iteration-based ``CheckpointHook`` saves at, the weights are
      checked as at an epoch's end: that hook deletes its oldest kept checkpoint before it
      saves, so the check comes first.
    * Before any checkpoint is written (the epoch's, the best, the last, a user hook's), its
      ``state_dict`` and ``ema_state_dict`` are checked unless the weights were checked at this
      iteration already; a non-finite one is not written.
    * During the epoch the hook records, on the device and without waiting for it, the first
      iteration whose losses were not finite and which of them. The error names it; when the
      weights stayed finite (``AmpOptimWrapper`` skips a step whose gradients overflow) the end
      of the epoch logs a warning with the count instead.

    On divergence it writes ``diverged.json`` in the work dir and raises
    :class:`TrainingDiverged`, both naming the epoch, the first non-finite tensor, the first
    non-finite loss and the last checkpoint written (``--resume`` continues from it; lower the
    learning rate first). A run that then trains removes an earlier ``diverged.json``.

    Args:
        interval (int, optional): also check the weights every ``interval`` training
            iterations. None: at the end of each epoch and before each checkpoint only.
    """
    priority = 'LOW'  # after EMAHook (NORMAL) fills the checkpoint, before CheckpointHook

    def __init__(self, interval: Optional[int] = None) -> None:
        if interval is not None and (not isinstance(interval, int) or interval < 1):
            raise ValueError(f'DivergenceCheckHook: interval must be None or a positive int, '
                             f'got {interval!r}')
        self.interval = interval
        self._checked_at: Optional[int] = None  # the iteration whose weights were found finite
        self._reset_losses()

    # ------------------------------------------------------------------ the losses' record
    def _reset_losses(self) -> None:
        self._loss_keys: Optional[List[str]] = None
        self._first_bad: Optional[torch.Tensor] = None  # iteration (1-based), -1: none yet
        self._bad_terms: Optional[torch.Tensor] = None  # which losses, at that iteration
        self._bad_count: Optional[torch.Tensor] = None  # iterations with a non-finite loss
        self._settled_first: Optional[Tuple[int, List[str]]] = None
        self._settled_count = 0

    def before_train(self, runner) -> None:
        stale = Path(runner.work_dir) / DIVERGED_FILE  # a resumed run that diverged before
        if is_main_process() and stale.is_file():
            stale.unlink()

    def before_train_epoch(self, runner) -> None:
        self._reset_losses()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if outputs:
            self._record_losses(runner.iter, outputs)
        if ((self.interval is not None and self.every_n_train_iters(runner, self.interval))
                or self._saves_after_this_iter(runner)):
            self._check_model(runner, f'after iteration {runner.iter + 1}', runner.iter + 1)

    def _saves_after_this_iter(self, runner) -> bool:
        """Whether an iteration-based ``CheckpointHook`` saves after this iteration: it deletes
        the oldest kept checkpoint before it saves, so the weights are checked first."""
        return any(
            isinstance(hook, CheckpointHook) and not hook.by_epoch and hook.interval > 0
            and (hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                 or (hook.save_last and hook.is_last_train_iter(runner)))
            for hook in runner.hooks)

    def _record_losses(self, iteration: int, outputs: dict) -> None:
        scalars = [(key, value) for key, value in outputs.items()
                   if torch.is_tensor(value) and value.numel() == 1
                   and value.is_floating_point()]
        if not scalars:
            return
        keys = [key for key, _ in scalars]
        device = scalars[0][1].device
        finite = torch.stack([torch.isfinite(value.detach().reshape(())).to(device)
                              for _, value in scalars])
        if keys != self._loss_keys:  # the first iteration, or a model whose losses change
            self._settle()
            self._loss_keys = keys
            self._first_bad = torch.full((), -1, dtype=torch.long, device=device)
            self._bad_terms = torch.zeros(len(keys), dtype=torch.bool, device=device)
            self._bad_count = torch.zeros((), dtype=torch.long, device=device)
        bad = ~finite.all()
        new = bad & (self._first_bad < 0)
        # a Python number in torch.where is no host-device copy: nothing waits for the device
        self._first_bad = torch.where(new, iteration + 1, self._first_bad)
        self._bad_terms = torch.where(new, ~finite, self._bad_terms)
        self._bad_count += bad

    def _settle(self) -> None:
        """Move the record on the device into Python numbers (waits for the device)."""
        if self._first_bad is None:
            return
        first, count = int(self._first_bad), int(self._bad_count)
        if first >= 0 and self._settled_first is None:
            terms = [key for key, bad in zip(self._loss_keys, self._bad_terms.tolist()) if bad]
            self._settled_first = (first, terms)
        self._settled_count += count
        self._loss_keys = self._first_bad = self._bad_terms = self._bad_count = None

    def _loss_report(self) -> Tuple[Optional[Tuple[int, List[str]]], int]:
        """The first iteration (1-based) with a non-finite loss and its losses, or None; and
        how many iterations of this epoch had one."""
        self._settle()
        return self._settled_first, self._settled_count

    # ----------------------------------------------------------------------- the weights
    def after_train_epoch(self, runner) -> None:
        self._check_model(runner, f'after epoch {runner.epoch + 1}', runner.iter)
        report, count = self._loss_report()
        if report is not None:
            print_log(f'DivergenceCheckHook: in epoch {runner.epoch + 1} the loss was not '
                      f'finite in {count} iteration(s), first at iteration {report[0]} '
                      f'({", ".join(report[1])}); the weights stayed finite (a mixed-precision '
                      f'optimizer skips such steps)', logger='current', level=logging.WARNING)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._checked_at == runner.iter:
            return  # these weights were checked (the end of the epoch, or the interval)
        for key in ('state_dict', 'ema_state_dict'):
            name = first_non_finite(checkpoint.get(key, {}).items())
            if name is not None:
                self._raise(runner, 'in the checkpoint to be saved', runner.iter,
                            f'{key}: {name}')

    def _check_model(self, runner, when: str, done: int) -> None:
        name = first_non_finite(self._named_weights(runner))
        if is_distributed():
            flag = torch.tensor([0.0 if name is None else 1.0])
            all_reduce(flag, op='max')
            if name is None and flag.item() > 0:
                name = 'on another rank'
        if name is not None:
            self._raise(runner, when, done, name)
        self._checked_at = runner.iter  # as the checkpoint hooks after this one see it

    @staticmethod
    def _named_weights(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        for name, tensor in model.state_dict(keep_vars=True).items():
            yield f'model: {name}', tensor
        for hook in runner.hooks:
            if isinstance(hook, EMAHook) and hasattr(hook, 'ema_model'):
                for name, tensor in hook.ema_model.module.state_dict(keep_vars=True).items():
                    yield f'ema: {name}', tensor

    def _raise(self, runner, when: str, done: int, name: str) -> None:
        report, count = self._loss_report()
        loss = ('no non-finite loss was recorded this epoch' if report is None else
                f'the loss was first not finite at iteration {report[0]} '
                f'({", ".join(report[1])}), in {count} iteration(s) this epoch')
        record = Path(runner.work_dir) / 'last_checkpoint'
        last = record.read_text().strip() if record.is_file() else None
        if last is None:
            resume = 'no checkpoint was written before it'
        elif Path(last).is_file():
            resume = (f'the last checkpoint written is {last}; resume from it (tools/train.py '
                      f'--resume) with a lower learning rate')
        else:  # a checkpoint hook deleted it before it tried to save these weights
            resume, last = f'the last checkpoint written, {last}, is gone', None
        record = dict(epoch=runner.epoch + 1, iterations_done=done, non_finite=name,
                      first_non_finite_loss=None if report is None else dict(
                          iteration=report[0], losses=report[1]),
                      resume_from=last)
        if is_main_process():
            (Path(runner.work_dir) / DIVERGED_FILE).write_text(json.dumps(record) + '\n')
        raise TrainingDiverged(
            f'training diverged: a weight is not finite {when} ({done} of '
            f'{runner.max_iters} iterations done), first {name}; {loss}. No checkpoint with '
            f'these weights was written; {resume}. A non-finite loss usually means a too high '
            f'learning rate for this batch size, or a label the loss cannot take. '
            f'({DIVERGED_FILE} in the work dir says this for scripts.)', record)
