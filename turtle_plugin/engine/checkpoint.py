"""Loading MMEngine checkpoints under torch>=2.6's ``weights_only=True`` default.

MMEngine 0.10.7 loads checkpoints with ``torch.load(path, map_location=...)``. Since torch 2.6
that unpickles only allow-listed types, and an MMEngine checkpoint holds a few more: the
``MessageHub`` log buffers (:class:`mmengine.logging.HistoryBuffer` over numpy arrays) and numpy
scalars in ``meta``. Rather than turning ``weights_only`` off (which would let any checkpoint run
code), :func:`allow_mmengine_checkpoint_types` adds exactly those types to torch's allow-list.

An empty numpy array (MMPose's ``skeleton_link_colors`` of a dataset without a skeleton, kept
in ``meta['dataset_meta']``) pickles its empty data buffer, which protocol 2 writes as a call of
``builtins.bytes``; that constructor only makes bytes, so it is allowed too.

One more global appears: a ``HistoryBuffer`` pickles its statistics methods (``HistoryBuffer.min``
...), which pickle protocol 2+ writes as ``builtins.getattr(HistoryBuffer, 'min')``. Allowing
``getattr`` itself would open every attribute of every allowed type, so the name
``builtins.getattr`` is bound, for ``torch.load`` only, to :func:`history_buffer_getattr`, which
resolves nothing but those methods.
"""
import pickle
from typing import Any, List

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = [
    'mmengine_checkpoint_types', 'allow_mmengine_checkpoint_types', 'history_buffer_getattr'
]


def history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to ``HistoryBuffer``'s registered statistics methods.

    Raises:
        pickle.UnpicklingError: for any other object or attribute.
    """
    # The defaults are registered lazily, by the first HistoryBuffer built in this process.
    allowed = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'this checkpoint asks for getattr({obj!r}, {name!r}); when loading with '
        'weights_only=True only HistoryBuffer statistics methods may be resolved')


def mmengine_checkpoint_types() -> List[object]:
    """The non-tensor types an MMEngine training checkpoint pickles.

    Returns:
        list: classes and reconstruction functions to allow-list in ``torch.load``.
    """
    # numpy<2 names its pickling helpers under numpy.core, numpy>=2 under numpy._core.
    if int(np.__version__.split('.')[0]) >= 2:
        from numpy._core import multiarray
    else:
        from numpy.core import multiarray
    numpy_dtypes = [type(np.dtype(name)) for name in (
        'bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64',
        'float16', 'float32', 'float64')]
    return [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        multiarray._reconstruct,
        multiarray.scalar,
        *numpy_dtypes,
        bytes,  # b'' of an empty array's buffer (protocol 2 writes it as bytes())
        (history_buffer_getattr, 'builtins.getattr'),
    ]


def allow_mmengine_checkpoint_types() -> None:
    """Let ``torch.load(weights_only=True)`` read MMEngine checkpoints. No-op on torch<2.4."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:
        add_safe_globals(mmengine_checkpoint_types())
