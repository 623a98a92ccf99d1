"""Check, when a model is built, that each part takes the channels the part before it gives.

The backbone and the neck report the channels of their outputs (``out_channels``); the neck and
the head module hold the channels they were built for (``in_channels``). A config that switches
``backbone.arch`` or ``neck.arch`` and leaves ``head.head_module.in_channels`` as it was would
otherwise fail at the first forward pass with a broadcast error inside ``ImplicitA``.
"""
from typing import Optional

import torch.nn as nn

__all__ = ['check_feature_channels']


def _describe(module: nn.Module) -> str:
    arch = getattr(module, 'arch', None)
    return type(module).__name__ + (f", arch '{arch}'" if arch is not None else '')


def check_feature_channels(backbone: nn.Module, neck: Optional[nn.Module],
                           head_module: Optional[nn.Module], head_key: str) -> None:
    """Raise if the neck's or the head module's ``in_channels`` differ from the ``out_channels``
    of the part that feeds it. Parts that report no channels are not checked.

    Args:
        backbone (nn.Module): the built backbone.
        neck (nn.Module, optional): the built neck; None when the backbone feeds the head.
        head_module (nn.Module, optional): the head's layers (``head.head_module``).
        head_key (str): the head's key in the model config, ``'head'`` or ``'bbox_head'``.

    Raises:
        ValueError: naming both sides and the value that fits.
    """
    links = [(backbone, 'backbone', neck, 'model.neck.in_channels')]
    links.append((neck if neck is not None else backbone, 'neck' if neck is not None
                  else 'backbone', head_module, f'model.{head_key}.head_module.in_channels'))
    for producer, producer_name, consumer, key in links:
        given = getattr(producer, 'out_channels', None)
        taken = getattr(consumer, 'in_channels', None)
        if given is None or taken is None or list(given) == list(taken):
            continue
        raise ValueError(
            f'{key} is {list(taken)} ({_describe(consumer)}) but the {producer_name} '
            f'({_describe(producer)}) outputs {list(given)} channels: set {key}={list(given)} '
            f'or change the {producer_name} back')
