"""Helpers the training hooks share."""

__all__ = ['epochs_of_ratio']


def epochs_of_ratio(ratio: float, max_epochs: int) -> int:
    """How many of ``max_epochs`` epochs make up ``ratio`` of them, rounded half up.

    The hooks that take a part of the schedule (``CloseMosaicHook(last_ratio=...)``,
    ``KptSigmaWarmupHook(warmup_ratio=...)``) count it the same way: 0.5 of 9 epochs is 5. Each
    hook checks its ratio is in ``[0, 1]`` when it is built.
    """
    return int(ratio * max_epochs + 0.5)
