"""YOLOv7's learning-rate and momentum schedule (``train.py`` of YOLOv5/YOLOv7).

Per epoch ``e`` of ``E`` the learning rate is ``initial_lr * lf(e)`` with
``lf(e) = (1 - cos(pi * e / (E - 1))) / 2 * (lrf - 1) + 1`` (cosine, ``one_cycle``) or
``lf(e) = (1 - e / (E - 1)) * (1 - lrf) + lrf`` (linear). During the first
``max(round(warmup_epochs * iters_per_epoch), min_warmup_iters)`` iterations the learning rate of
each group is interpolated from 0 -- or from ``warmup_bias_lr`` for the bias group -- to
``initial_lr * lf(e)``, and the momentum from ``warmup_momentum`` to its configured value.

At train start the weight decay is scaled to the batch the run trains on (YOLOv7's
``weight_decay *= total_batch_size * accumulate / nbs``), taking the per-GPU batch from the train
dataloader: one source, whatever the config or ``--cfg-options`` set it to.
"""
import logging
import math

import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import print_log

from turtle_plugin.registry import HOOKS
from ..optimizers import scale_weight_decay

__all__ = ['YOLOv7ParamSchedulerHook']


@HOOKS.register_module()
class YOLOv7ParamSchedulerHook(Hook):
    """Warm-up and per-epoch decay of learning rate and momentum, as YOLOv7.

    Use it as ``default_hooks.param_scheduler``, in place of MMEngine's ``ParamSchedulerHook``
    (with ``param_scheduler = None``; ``configs/_base_/schedules/yolov7_p5.py``), together with
    :class:`YOLOv7OptimWrapperConstructor`, whose bias group is named ``'bias'``. Before training
    it sets the weight decay of the constructor's ``'decay'`` group for the train dataloader's
    batch size (:func:`scale_weight_decay`).

    Args:
        scheduler_type (str): ``'cosine'`` (the original's ``one_cycle``) or ``'linear'``.
        lr_factor (float): final learning rate as a fraction of the initial one (``lrf``).
        warmup_epochs (float): warm-up length in epochs.
        min_warmup_iters (int): warm-up lasts at least this many iterations (1000 in the original).
        warmup_bias_lr (float): learning rate the bias group starts from.
        warmup_momentum (float): momentum at the first iteration.
    """
    priority = 'HIGH'

    def __init__(self,
                 scheduler_type: str = 'cosine',
                 lr_factor: float = 0.1,
                 warmup_epochs: float = 3.0,
                 min_warmup_iters: int = 1000,
                 warmup_bias_lr: float = 0.1,
                 warmup_momentum: float = 0.8):
        if scheduler_type not in ('cosine', 'linear'):
            raise ValueError(f'scheduler_type must be "cosine" or "linear", got {scheduler_type!r}')
        self.scheduler_type = scheduler_type
        self.lr_factor = lr_factor
        self.warmup_epochs = warmup_epochs
        self.min_warmup_iters = min_warmup_iters
        self.warmup_bias_lr = warmup_bias_lr
        self.warmup_momentum = warmup_momentum
        self.warmup_iters = 0
        self.max_epochs = 1

    def lf(self, epoch: int) -> float:
        """The factor applied to the initial learning rate during ``epoch``."""
        progress = epoch / max(self.max_epochs - 1, 1)
        if self.scheduler_type == 'cosine':
            return (1 - math.cos(math.pi * progress)) / 2 * (self.lr_factor - 1) + 1
        return (1 - progress) * (1 - self.lr_factor) + self.lr_factor

    def before_train(self, runner) -> None:
        self.max_epochs = runner.max_epochs
        self._scale_weight_decay(runner)
        self.warmup_iters = max(
            round(self.warmup_epochs * len(runner.train_dataloader)), self.min_warmup_iters)
        # After a resume the groups already carry their initial values from the checkpoint.
        for group in runner.optim_wrapper.param_groups:
            group.setdefault('initial_lr', group['lr'])
            if 'momentum' in group:
                group.setdefault('initial_momentum', group['momentum'])

    @staticmethod
    def _scale_weight_decay(runner) -> None:
        """The decay group's weight decay for the train dataloader's batch (after a resume, so a
        run resumed at another batch size decays for that one)."""
        if not any('nominal_weight_decay' in g for g in runner.optim_wrapper.param_groups):
            print_log('YOLOv7ParamSchedulerHook: no weight decay to scale (the optimizer was not '
                      'built by YOLOv7OptimWrapperConstructor, or resumed from a checkpoint '
                      'written before it kept its nominal decay)', logger='current',
                      level=logging.WARNING)
            return
        loader = runner.train_dataloader
        batch_size = loader.batch_size or getattr(loader.batch_sampler, 'batch_size', None)
        if batch_size is None:
            raise ValueError('YOLOv7ParamSchedulerHook scales the weight decay to the train '
                             "dataloader's batch size, and this dataloader reports none")
        scale_weight_decay(runner.optim_wrapper, batch_size)

    def before_train_epoch(self, runner) -> None:
        factor = self.lf(runner.epoch)
        for group in runner.optim_wrapper.param_groups:
            group['lr'] = group['initial_lr'] * factor

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        cur_iter = runner.iter
        if cur_iter > self.warmup_iters:
            return
        factor = self.lf(runner.epoch)
        span = [0, self.warmup_iters]
        for group in runner.optim_wrapper.param_groups:
            start = self.warmup_bias_lr if group.get('name') == 'bias' else 0.0
            group['lr'] = float(np.interp(cur_iter, span, [start, group['initial_lr'] * factor]))
            if 'momentum' in group:
                group['momentum'] = float(
                    np.interp(cur_iter, span, [self.warmup_momentum, group['initial_momentum']]))
