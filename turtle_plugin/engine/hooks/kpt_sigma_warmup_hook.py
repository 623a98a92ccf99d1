"""Sigma warm-up of the OKS keypoint loss: wide early, the configured sigmas later.

``1 - OKS`` is flat for keypoints many sigmas away from their target, where every keypoint
starts; small sigmas (COCO-like 0.025-0.1) make it flat a few pixels off. The hook widens the
loss's sigmas at the start of training and narrows them linearly to the head's configured
``kpt_sigmas`` over the first ``warmup_ratio`` of the epochs, so the early gradient comes from a
wide loss and the late one from the loss's configured shape (the metric's, by default). The
metric's sigmas are not touched.
"""
from typing import Union

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from turtle_plugin.registry import HOOKS
from .utils import epochs_of_ratio

__all__ = ['KptSigmaWarmupHook']


@HOOKS.register_module()
class KptSigmaWarmupHook(Hook):
    """Linear warm-up of the keypoint loss's sigmas from ``start`` to the head's own.

    With ``W = warmup_ratio * max_epochs`` rounded half up (at least 1), training epoch ``e``
    (0-based) uses ``start + (configured - start) * min(1, e / W)`` per keypoint, computed from
    the epoch alone, so a resumed run continues exactly.

    Args:
        start (float | str): sigma of every keypoint at epoch 0, or ``'uniform'`` for
            ``1 / K``.
        warmup_ratio (float): the part of the training epochs over which the sigmas reach the
            configured ones, in ``[0, 1]``; 0 turns the warm-up off (a config's
            ``default_hooks=dict(kpt_sigma_warmup=dict(warmup_ratio=0))``).
    """
    priority = 'NORMAL'

    def __init__(self, start: Union[float, str] = 'uniform', warmup_ratio: float = 0.5):
        if not (start == 'uniform' or (isinstance(start, (int, float)) and start > 0)):
            raise ValueError(f"start must be a positive sigma or 'uniform', got {start!r}")
        if not 0 <= warmup_ratio <= 1:
            raise ValueError(f'warmup_ratio must be in [0, 1], got {warmup_ratio}')
        self.start = start
        self.warmup_ratio = warmup_ratio
        self.warmup_epochs = None
        self._configured = None

    @staticmethod
    def _branch(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        branch = getattr(getattr(model, 'head', None), 'kpt_branch', None)
        if branch is None:
            raise ValueError('KptSigmaWarmupHook needs a model whose head has a keypoint '
                             'branch (head.kpt_branch)')
        return branch

    def sigmas_at(self, epoch: int) -> torch.Tensor:
        """The loss's sigmas during training epoch ``epoch`` (0-based)."""
        end = self._configured
        start = torch.full_like(end, 1. / end.numel() if self.start == 'uniform'
                                else float(self.start))
        return start + (end - start) * min(1., epoch / self.warmup_epochs)

    def before_train(self, runner) -> None:
        if self.warmup_ratio == 0:
            return
        self._configured = self._branch(runner).kpt_sigmas.detach().clone()
        self.warmup_epochs = max(1, epochs_of_ratio(self.warmup_ratio, runner.max_epochs))

    def before_train_epoch(self, runner) -> None:
        if self._configured is not None:
            branch = self._branch(runner)
            branch.kpt_sigmas.copy_(self.sigmas_at(runner.epoch).to(branch.kpt_sigmas))

    def after_train(self, runner) -> None:
        # validation, testing and export after training see the configured sigmas again
        if self._configured is not None:
            self._branch(runner).kpt_sigmas.copy_(self._configured)
