"""HostSyncCounter: each kind of call that synchronises on CUDA is caught, once, at its own
line; sync-free code (the kind a training step should be made of) records nothing."""
import inspect

import pytest
import torch

from turtle_plugin.testing import HostSyncCounter, count_host_syncs

SITE_PREFIX = 'tests/test_testing/test_host_syncs.py'  # sites are relative to the repository root
X = torch.arange(-2., 3.)  # (5,): two negatives, zero, two positives
MASK = X > 0

# name -> (call, op recorded, kind); each call is written on one line
SYNCING = {
    'item': (lambda: X.sum().item(), 'Tensor.item', 'read'),
    'if on a tensor': (lambda: 1 if X.sum() > 0 else 0, 'Tensor.__bool__', 'read'),
    'max with an int': (lambda: max(X.sum(), 1), 'Tensor.__bool__', 'read'),
    'int': (lambda: int(X.sum()), 'Tensor.__int__', 'read'),
    'float': (lambda: float(X.sum()), 'Tensor.__float__', 'read'),
    'format': (lambda: f'{X.sum():.3f}', 'Tensor.__format__', 'read'),
    'tolist': (lambda: X.tolist(), 'Tensor.tolist', 'read'),
    'numpy': (lambda: X.numpy(), 'Tensor.numpy', 'read'),
    'cpu': (lambda: X.cpu(), 'Tensor.cpu', 'read'),
    'to cpu': (lambda: X.to('cpu'), 'Tensor.to', 'read'),
    'equal': (lambda: torch.equal(X, X), 'torch.equal', 'read'),
    'allclose': (lambda: torch.allclose(X, X), 'torch.allclose', 'read'),
    'nonzero': (lambda: MASK.nonzero(), 'Tensor.nonzero', 'shape'),
    'argwhere': (lambda: torch.argwhere(MASK), 'torch.argwhere', 'shape'),
    'where with one argument': (lambda: torch.where(MASK), 'torch.where', 'shape'),
    'mask indexing': (lambda: X[MASK], 'Tensor.__getitem__', 'shape'),
    'mask assignment': (lambda: X.clone().__setitem__(MASK, 0.), 'Tensor.__setitem__', 'shape'),
    'masked_select': (lambda: X.masked_select(MASK), 'Tensor.masked_select', 'shape'),
    'unique': (lambda: X.unique(), 'Tensor.unique', 'shape'),
    'repeat_interleave': (lambda: X.repeat_interleave(MASK.long()), 'Tensor.repeat_interleave',
                          'shape'),
    'new_tensor': (lambda: X.new_tensor(2.0), 'Tensor.new_tensor', 'upload'),
    'tensor on a device': (lambda: torch.tensor(2.0, device=X.device), 'torch.tensor', 'upload'),
}

SYNC_FREE = {
    'arithmetic and reductions': lambda: (X * 2 + 1).sum() / X.numel(),
    'clamp on the device': lambda: X.sum().clamp(min=1),
    'masked_fill': lambda: X.masked_fill(MASK, 0),
    'where with three arguments': lambda: torch.where(MASK, X, X.new_zeros(())),
    'integer-tensor indexing': lambda: X[torch.arange(3)],
    'repeat_interleave with output_size': lambda: X.repeat_interleave(MASK.long(), output_size=2),
    'scatter_reduce': lambda: X.new_zeros(5).scatter_reduce(0, torch.arange(5), X, 'amax'),
    'shapes and len': lambda: (len(X), X.shape[0], X.numel(), X.dim()),
    'tensor from data on the CPU': lambda: torch.tensor([1.0, 2.0]),
    'same-device to': lambda: X.to(X.dtype),
    'to a tensor\'s device': lambda: X.to(X.device),
    'topk': lambda: X.topk(2).values.sum(),
}


@pytest.mark.parametrize('name', sorted(SYNCING))
def test_each_kind_of_sync_is_recorded_once_at_its_line(name):
    call, op, kind = SYNCING[name]
    counter = count_host_syncs(call)
    line = inspect.getsourcelines(call)[1]
    assert [(s.op, s.kind, s.site) for s in counter.syncs] == [
        (op, kind, f'{SITE_PREFIX}:{line}')]


@pytest.mark.parametrize('name', sorted(SYNC_FREE))
def test_sync_free_code_records_nothing(name):
    assert len(count_host_syncs(SYNC_FREE[name])) == 0


def test_syncs_inside_backward_and_inside_library_code_are_caught():
    x = torch.arange(-2., 3., requires_grad=True)
    with HostSyncCounter() as counter:
        x[x > 0].sum().backward()  # the backward of mask indexing scatters through the mask
        torch.nn.utils.clip_grad_norm_([x], 1.0, error_if_nonfinite=True)  # an `if` in torch
    line = inspect.currentframe().f_lineno - 2
    assert [(s.op, s.kind, int(s.site.rsplit(':', 1)[1])) for s in counter.syncs] == [
        ('Tensor.__getitem__', 'shape', line), ('aten.index_put', 'shape', line),
        ('Tensor.__bool__', 'read', line + 1)]  # at the first line outside torch


def test_report_groups_by_site():
    def twice():
        for _ in range(2):
            X.sum().item()
    counter = count_host_syncs(twice)
    assert len(counter) == 2 and len(counter.by_site()) == 1
    assert counter.report().splitlines()[0] == '2 host syncs'
    assert counter.report().splitlines()[1].startswith('   2 x tests/test_testing/')
