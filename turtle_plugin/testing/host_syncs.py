"""Count, on any device, the calls that would make the host wait for a CUDA device.

``torch.cuda.set_sync_debug_mode('error')`` finds host-device synchronisations only where a
GPU runs the code. :class:`HostSyncCounter` finds the same calls on a CPU, by what they are:
while it is active, every torch call goes through a ``TorchFunctionMode`` (Python-level API:
``Tensor.item``, ``bool(tensor)``, ``tensor[mask]``, ``new_tensor``...) and every ATen op
through a ``TorchDispatchMode`` (what C++ code calls underneath: ``_local_scalar_dense``,
``nonzero``...). Each call that syncs on CUDA is recorded with its kind and the Python line
that made it (the first frame outside torch). An ATen op made inside a call the function
mode already recorded is not counted again.

Kinds (what CUDA does for them):

* ``read``: a value copied to the host -- ``item``, ``tolist``, ``numpy``, ``cpu``,
  ``to('cpu')`` (a device named by a string: ``to(x.device)`` is taken for a same-device
  move), ``bool``/``int``/``float``/``format`` of a tensor (an ``if`` on a tensor
  value, ``max(tensor, 1)``), ``torch.equal``, ``torch.allclose``.
* ``shape``: an output whose size depends on the values -- ``nonzero``, ``argwhere``,
  ``torch.where(cond)``, ``masked_select``, ``unique``, boolean-mask indexing and assignment,
  ``repeat_interleave`` without ``output_size``.
* ``upload``: a tensor made from Python data on a tensor's device (``new_tensor``,
  ``torch.tensor(data, device=...)``, ``torch.as_tensor(data, device=...)``) -- a pageable
  host-to-device copy, which CUDA's synchronous ``copy_`` waits for (and the sync debug mode
  reports). On a CPU run the device cannot tell the two apart, so every such call counts.

Not counted: the copy of a CPU tensor to the device (``tensor.to(device)`` of a batch), which
is the data loader's business; CUDA's own internal waits (cudnn benchmark, allocator).
"""
import os
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ['HostSync', 'HostSyncCounter', 'count_host_syncs']

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_THIS_FILE = os.path.abspath(__file__)

# Python-level calls -> kind
_READS = {'item', 'tolist', 'numpy', '__bool__', '__int__', '__float__', '__index__',
          '__format__', '__array__', '__contains__', 'is_nonzero', 'equal', 'allclose'}
_SHAPES = {'nonzero', 'argwhere', 'masked_select', 'unique', 'unique_consecutive'}
_UPLOADS = {'tensor', 'as_tensor', 'asarray'}
# ATen ops -> kind, for what C++ code calls (``_local_scalar_dense`` is behind every read)
_ATEN_READS = {'_local_scalar_dense', 'equal', 'allclose', 'is_nonzero'}
_ATEN_SHAPES = {'nonzero', 'argwhere', 'masked_select', '_unique', '_unique2', 'unique_dim',
                'unique_consecutive', 'unique_dim_consecutive'}


@dataclass(frozen=True)
class HostSync:
    """One call that synchronises on CUDA.

    Attributes:
        kind (str): ``'read'``, ``'shape'`` or ``'upload'`` (see the module docstring).
        op (str): the torch call (``'Tensor.item'``) or ATen op (``'aten.nonzero'``).
        site (str): ``file:line`` of the Python code that made it, relative to the current
            directory when under it.
    """
    kind: str
    op: str
    site: str

    def __str__(self) -> str:
        return f'{self.site}: {self.op} ({self.kind})'


def _is_bool_index(index) -> bool:
    """Whether a ``__getitem__``/``__setitem__`` index holds a bool tensor (a mask)."""
    parts = index if isinstance(index, tuple) else (index, )
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool and p.dim() > 0
               for p in parts)


def _call_site() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_TORCH_DIR) and path != _THIS_FILE:
            cwd = os.getcwd() + os.sep
            shown = path[len(cwd):] if path.startswith(cwd) else path
            return f'{shown}:{frame.f_lineno}'
        frame = frame.f_back
    return '<torch>'


def _function_kind(name: str, args: tuple, kwargs: dict) -> Optional[str]:
    """Kind of a Python-level torch call, or None when it does not synchronise."""
    if name in _READS:
        return 'read'
    if name in _SHAPES:
        return 'shape'
    if name == 'where' and len(args) + len(kwargs) == 1:
        return 'shape'
    if name == 'repeat_interleave' and isinstance(args[1] if len(args) > 1 else
                                                  kwargs.get('repeats'), torch.Tensor):
        return None if kwargs.get('output_size') is not None else 'shape'
    if name in ('__getitem__', '__setitem__') and _is_bool_index(args[1]):
        return 'shape'
    if name == 'cpu':
        return 'read'
    if name == 'to':  # a named 'cpu'; a torch.device is taken to be some tensor's device
        target = kwargs.get('device', args[1] if len(args) > 1 else None)
        if isinstance(target, str) and torch.device(target).type == 'cpu':
            return 'read'
    if name == 'new_tensor':
        return 'upload'
    if name in _UPLOADS and kwargs.get('device') is not None and args \
            and not isinstance(args[0], torch.Tensor):
        return 'upload'
    return None


class _FunctionMode(TorchFunctionMode):

    def __init__(self, owner: 'HostSyncCounter'):
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', str(func))
        kind = _function_kind(name, args, kwargs)
        if kind is None:
            return func(*args, **kwargs)
        owner_name = 'Tensor' if getattr(func, '__qualname__', '').startswith('Tensor') or \
            getattr(func, '__objclass__', None) is torch._C.TensorBase else 'torch'
        self.owner._record(kind, f'{owner_name}.{name}')
        self.owner._inside += 1
        try:
            return func(*args, **kwargs)
        finally:
            self.owner._inside -= 1


class _DispatchMode(TorchDispatchMode):

    def __init__(self, owner: 'HostSyncCounter'):
        super().__init__()
        self.owner = owner

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.owner._inside:
            kind = self._kind(func, args, kwargs)
            if kind is not None:
                self.owner._record(kind, f'aten.{func._overloadpacket.__name__}')
        return func(*args, **kwargs)

    @staticmethod
    def _kind(func, args: tuple, kwargs: dict) -> Optional[str]:
        name = func._overloadpacket.__name__
        if name in _ATEN_READS:
            return 'read'
        if name in _ATEN_SHAPES:
            return 'shape'
        if name in ('index', 'index_put', 'index_put_', '_index_put_impl_'):
            indices = args[1] if len(args) > 1 else kwargs.get('indices', ())
            if any(i is not None and i.dtype == torch.bool for i in indices):
                return 'shape'
        if name == 'repeat_interleave' and isinstance(args[0], torch.Tensor) \
                and kwargs.get('output_size') is None and (len(args) < 3 or args[2] is None) \
                and func.__name__.split('.')[-1] == 'Tensor':
            return 'shape'
        return None


class HostSyncCounter:
    """Context manager recording the calls that would synchronise host and CUDA device.

    Example::

        with HostSyncCounter() as syncs:
            loss = model(**data, mode='loss')
        print(syncs.report())   # one line per distinct site

    Attributes:
        syncs (list[HostSync]): every call, in order.
    """

    def __init__(self):
        self.syncs: List[HostSync] = []
        self._inside = 0
        self._modes = (_FunctionMode(self), _DispatchMode(self))

    def _record(self, kind: str, op: str) -> None:
        self.syncs.append(HostSync(kind, op, _call_site()))

    def __enter__(self) -> 'HostSyncCounter':
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)

    def __len__(self) -> int:
        return len(self.syncs)

    def by_site(self) -> Dict[Tuple[str, str, str], int]:
        """``(site, op, kind)`` -> how many times, in order of first occurrence."""
        return dict(Counter((s.site, s.op, s.kind) for s in self.syncs))

    def report(self) -> str:
        """One line per distinct site: ``count x site: op (kind)``."""
        lines = [f'{n:4d} x {site}: {op} ({kind})'
                 for (site, op, kind), n in self.by_site().items()]
        return '\n'.join([f'{len(self.syncs)} host syncs'] + lines)


def count_host_syncs(fn: Callable, *args, **kwargs) -> HostSyncCounter:
    """Run ``fn(*args, **kwargs)`` under a :class:`HostSyncCounter` and return the counter."""
    with HostSyncCounter() as counter:
        fn(*args, **kwargs)
    return counter
