"""Close mosaic: train the last epochs on a pipeline without mixing augmentations.

As in YOLOX and YOLOv8 ("close_mosaic"), the final epochs see whole, unmixed images, which
matches the evaluation distribution. The hook rebuilds the training dataloader once, from the
config's ``train_dataloader`` with ``new_train_pipeline``, like MMPose's
``YOLOXPoseModeSwitchHook`` but without touching the model.
"""
import copy
from typing import Sequence

from mmengine.hooks import Hook
from mmengine.runner import Runner

from turtle_plugin.registry import HOOKS

__all__ = ['CloseMosaicHook']


@HOOKS.register_module()
class CloseMosaicHook(Hook):
    """Switch to ``new_train_pipeline`` for the last ``num_last_epochs`` training epochs.

    The switch happens before epoch ``max_epochs - num_last_epochs`` (0-based), or at the first
    epoch after it when training resumes later.

    Args:
        new_train_pipeline (Sequence[dict]): pipeline of the last epochs, e.g. letterbox +
            affine without border + HSV + flip + target + pack.
        num_last_epochs (int): how many final epochs use it.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self, new_train_pipeline: Sequence[dict], num_last_epochs: int = 15):
        if not new_train_pipeline:
            raise ValueError('CloseMosaicHook needs new_train_pipeline, the pipeline of the last '
                             'epochs (the mosaic pipeline\'s border and sizes do not carry over)')
        if num_last_epochs < 0:
            raise ValueError(f'num_last_epochs must be >= 0, got {num_last_epochs}')
        self.new_train_pipeline = list(new_train_pipeline)
        self.num_last_epochs = num_last_epochs
        self._switched = False

    def before_train_epoch(self, runner) -> None:
        if self._switched or self.num_last_epochs == 0:
            return
        if runner.epoch < runner.max_epochs - self.num_last_epochs:
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
