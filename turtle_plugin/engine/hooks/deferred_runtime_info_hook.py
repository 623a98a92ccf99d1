"""MMEngine's ``RuntimeInfoHook`` with the training log variables pushed to the message hub
only when something reads them (issue 13: no host synchronisation in the training step).

MMEngine's hook calls ``MessageHub.update_scalar`` on every log variable after every training
iteration, and the hub turns each tensor into a Python number with ``.item()``: on CUDA the host
waits for the device once per loss, every iteration, before it may queue the next batch. This
hook keeps the iterations' values on their device and pushes them, in order and with one
device-to-host copy, just before a reader needs them -- the ``LoggerHook`` at its interval and at
the end of each epoch, a validation, a checkpoint -- so the message hub, the log lines and the
visualiser's ``scalars.json`` are the same as with MMEngine's hook.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.hooks import LoggerHook, RuntimeInfoHook
from mmengine.utils import apply_to

from turtle_plugin.registry import HOOKS

__all__ = ['DeferredRuntimeInfoHook']


@dataclass
class _Iteration:
    """The log variables of one iteration, waiting for the message hub.

    ``values`` holds a Python number per key, or None where the value is a tensor still on its
    device; ``stacks`` holds those tensors, one 1-d tensor per (dtype, device), and the
    positions in ``keys`` their elements belong to.
    """
    keys: List[str]
    values: list
    stacks: Dict[Tuple[torch.dtype, torch.device], Tuple[torch.Tensor, List[int]]] = \
        field(default_factory=dict)


@HOOKS.register_module()
class DeferredRuntimeInfoHook(RuntimeInfoHook):
    """``RuntimeInfoHook`` whose ``train/<log variable>`` scalars reach the message hub when
    they are read instead of every iteration.

    Everything else is MMEngine's hook (run information, learning rates, validation and test
    metrics). After each training iteration the one-element tensors of the model's outputs are
    stacked on their device (a copy: later in-place changes do not leak into the log) and kept;
    numbers and numpy scalars are kept as they are. The kept iterations are pushed to the
    message hub, oldest first, each key's values in the order MMEngine's hook pushes them, with
    one ``tolist()`` per dtype and device (one for float losses) when:

    * a ``LoggerHook`` logs after this iteration (every ``interval`` batches, at the end of an
      epoch, at the last iteration), or
    * ``max_deferred_iters`` iterations are kept (memory stays bounded whatever the logger's
      interval, or without a logger), or
    * training ends, a validation starts, or a checkpoint is saved (the hub's history is part
      of it).

    An iteration whose outputs hold a key the message hub has not seen yet, or a value that is
    not a scalar, is pushed at once, after the kept ones, by MMEngine's own code: the hub's keys
    keep MMEngine's order (the first iteration is pushed at once) and an invalid value fails
    at the iteration that produced it, as before.

    A hook that reads ``train/`` losses from the message hub after every iteration (none of
    MMEngine's, MMDetection's, MMPose's or this plugin's does) sees them late; it can call
    :meth:`flush` first.

    Args:
        max_deferred_iters (int): the most iterations kept before they are pushed.
    """

    priority = 'VERY_HIGH'

    def __init__(self, max_deferred_iters: int = 1000) -> None:
        if not isinstance(max_deferred_iters, int) or max_deferred_iters < 1:
            raise ValueError('DeferredRuntimeInfoHook: max_deferred_iters must be a positive '
                             f'int, got {max_deferred_iters!r}')
        self.max_deferred_iters = max_deferred_iters
        self._pending: List[_Iteration] = []
        self._log_intervals: Tuple[int, ...] = ()

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._pending = []
        self._log_intervals = tuple(
            hook.interval for hook in runner.hooks if isinstance(hook, LoggerHook))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if outputs is not None:
            iteration = self._keep(runner.message_hub, outputs)
            if iteration is None:  # a new key or a value that is no scalar
                self.flush(runner)
                super().after_train_iter(runner, batch_idx, data_batch, outputs)
            else:
                self._pending.append(iteration)
        if self._pending and self._read_after(runner, batch_idx):
            self.flush(runner)

    def after_train_epoch(self, runner) -> None:
        self.flush(runner)

    def after_train(self, runner) -> None:
        self.flush(runner)
        super().after_train(runner)

    def before_val(self, runner) -> None:
        self.flush(runner)
        super().before_val(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._pending:  # the runner took the hub's state before calling this hook
            self.flush(runner)
            checkpoint['message_hub'] = apply_to(runner.message_hub.state_dict(),
                                                 lambda x: hasattr(x, 'cpu'), lambda x: x.cpu())

    def flush(self, runner) -> None:
        """Push the kept iterations to the message hub, oldest first."""
        pending, self._pending = self._pending, []
        for group in dict.fromkeys(g for it in pending for g in it.stacks):
            # the one device-to-host copy (and wait) of this group
            host = iter(torch.cat([it.stacks[group][0] for it in pending
                                   if group in it.stacks]).tolist())
            for it in pending:
                for position in it.stacks.get(group, (None, ()))[1]:
                    it.values[position] = next(host)
        for it in pending:
            for key, value in zip(it.keys, it.values):
                runner.message_hub.update_scalar(key, value)

    def _keep(self, message_hub, outputs: dict) -> Optional[_Iteration]:
        """The iteration's outputs to push later, or None when they must be pushed now."""
        keys = [f'train/{key}' for key in outputs]
        if any(key not in message_hub.log_scalars for key in keys):
            return None
        iteration = _Iteration(keys, [None] * len(keys))
        tensors: Dict[Tuple[torch.dtype, torch.device], List[int]] = {}
        for position, value in enumerate(outputs.values()):
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                tensors.setdefault((value.dtype, value.device), []).append(position)
            elif isinstance(value, (np.ndarray, np.number)) and value.size == 1:
                iteration.values[position] = value.item()  # on the host: no wait
            elif isinstance(value, (int, float)):
                iteration.values[position] = value
            else:
                return None
        values = list(outputs.values())
        for group, positions in tensors.items():
            stack = torch.stack([values[p].detach().reshape(()) for p in positions])
            iteration.stacks[group] = (stack, positions)
        return iteration

    def _read_after(self, runner, batch_idx: int) -> bool:
        """Whether the message hub's training scalars are read after this iteration."""
        return (len(self._pending) >= self.max_deferred_iters
                or self.end_of_epoch(runner.train_dataloader, batch_idx)
                or self.is_last_train_iter(runner)
                or any(self.every_n_inner_iters(batch_idx, n) for n in self._log_intervals))
