"""Re-seed the random generators at the start of every training epoch.

MMEngine seeds Python's, numpy's and torch's generators once, when the runner starts. A resumed
run starts them again from that seed, while the uninterrupted run has consumed them for every
earlier epoch (augmentation, dataloader seeds, validation), so the two diverge after a resume.
Seeding each epoch from ``(seed, epoch, rank)`` makes an epoch's randomness independent of
what came before it, so resuming from an epoch checkpoint continues exactly.

With ``num_workers > 0`` the workers are seeded from the main process's torch generator when
the epoch's iterator is created, so this also holds -- unless ``persistent_workers=True``, whose
workers keep their generators across epochs (and across nothing after a resume).
"""
import random

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from turtle_plugin.registry import HOOKS

__all__ = ['EpochSeedHook', 'epoch_seed']


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A 32-bit seed for one epoch of one rank, different for every (seed, epoch, rank)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed ``random``, ``numpy`` and ``torch`` from ``(runner.seed, epoch, rank)`` before each
    training epoch."""
    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        seed = epoch_seed(runner.seed, runner.epoch, get_rank())
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
