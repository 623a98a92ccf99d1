"""Close mosaic: train the last epochs on a pipeline without mixing augmentations.

As in YOLOX and YOLOv8 ("close_mosaic"), the final epochs see whole, unmixed images, which
matches the evaluation distribution. The hook rebuilds the training dataloader once, from the
config's ``train_dataloader`` with ``new_train_pipeline``, like MMPose's
``YOLOXPoseModeSwitchHook`` but without touching the model.
"""
import copy
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.runner import Runner

from turtle_plugin.registry import HOOKS
from .utils import epochs_of_ratio

__all__ = ['CloseMosaicHook']


@HOOKS.register_module()
class CloseMosaicHook(Hook):
    """Switch to ``new_train_pipeline`` for the last epochs of training.

    The last ``N`` epochs, ``N = num_last_epochs``, or with ``last_ratio`` the part of
    ``max_epochs`` rounded half up (``last_ratio=0.5`` of 100 epochs: 50), read at train time
    so that a run with other ``max_epochs`` closes at the same point of its schedule. The
    switch happens before epoch ``max_epochs - N`` (0-based), or at the first epoch after it
    when training resumes later.

    Args:
        new_train_pipeline (Sequence[dict]): pipeline of the last epochs, e.g. letterbox +
            affine without border + HSV + flip + target + pack.
        num_last_epochs (int, optional): how many final epochs use it; ``None`` when
            ``last_ratio`` is given.
        last_ratio (float, optional): which part of the epochs (0-1) use it instead of a
            count; give ``num_last_epochs=None`` with it.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 new_train_pipeline: Sequence[dict],
                 num_last_epochs: Optional[int] = 15,
                 last_ratio: Optional[float] = None):
        if not new_train_pipeline:
            raise ValueError('CloseMosaicHook needs new_train_pipeline, the pipeline of the last '
                             'epochs (the mosaic pipeline\'s border and sizes do not carry over)')
        if (num_last_epochs is None) == (last_ratio is None):
            raise ValueError(f'CloseMosaicHook takes one of num_last_epochs and last_ratio, got '
                             f'num_last_epochs={num_last_epochs}, last_ratio={last_ratio} (set '
                             f'the other to None)')
        if num_last_epochs is not None and num_last_epochs < 0:
            raise ValueError(f'num_last_epochs must be >= 0, got {num_last_epochs}')
        if last_ratio is not None and not 0 <= last_ratio <= 1:
            raise ValueError(f'last_ratio must be in [0, 1], got {last_ratio}')
        self.new_train_pipeline = list(new_train_pipeline)
        self.num_last_epochs = num_last_epochs
        self.last_ratio = last_ratio
        self._switched = False

    def last_epochs(self, max_epochs: int) -> int:
        """How many of ``max_epochs`` train on ``new_train_pipeline``."""
        if self.last_ratio is not None:
            return epochs_of_ratio(self.last_ratio, max_epochs)
        return self.num_last_epochs

    def before_train_epoch(self, runner) -> None:
        num_last = self.last_epochs(runner.max_epochs)
        if self._switched or num_last == 0:
            return
        if runner.epoch < runner.max_epochs - num_last:
            return
        loader_cfg = copy.deepcopy(runner.cfg.train_dataloader)
        dataset_cfg = loader_cfg['dataset']
        while 'pipeline' not in dataset_cfg and 'dataset' in dataset_cfg:  # dataset wrappers
            dataset_cfg = dataset_cfg['dataset']
        dataset_cfg['pipeline'] = copy.deepcopy(self.new_train_pipeline)
        randomness = getattr(runner, '_randomness_cfg', None) or {}
        runner.train_loop.dataloader = Runner.build_dataloader(
            loader_cfg, seed=getattr(runner, 'seed', None),
            diff_rank_seed=randomness.get('diff_rank_seed', False))
        self._switched = True
        runner.logger.info(f'CloseMosaicHook: epoch {runner.epoch}, training the last '
                           f'{runner.max_epochs - runner.epoch} epochs without mosaic/mixup')
