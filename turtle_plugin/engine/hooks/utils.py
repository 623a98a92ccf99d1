"""Helpers the training hooks share."""

__all__ = ['epochs_of_ratio']


def epochs_of_ratio(ratio: float, max_epochs: int) -> int:
    """How many of ``max_epochs`` epochs make up ``ratio`` of them, rounded half up.

    The hooks that take a part of the schedule (``CloseMosaicHook(last_ratio=...)``,
    ``KptSigmaWarmupHook(warmup_ratio=...)``) count it the same way: 0.5 of 9 epochs is 5.
    """
    if not 0 <= ratio <= 1:
        raise ValueError(f'a part of the epochs must be in [0, 1], got {ratio}')
    return int(ratio * max_epochs + 0.5)
