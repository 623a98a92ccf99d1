"""SyncFreeExpMomentumEMA: the average of MMDetection's ExpMomentumEMA, bit for bit, through
warm-up, intervals and a resume, with no host-device synchronisation in an update."""
import copy

import pytest
import torch
import torch.nn as nn
from mmdet.models.layers import ExpMomentumEMA

from turtle_plugin.models.layers import SyncFreeExpMomentumEMA
from turtle_plugin.testing import HostSyncCounter


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1))


def _train(model: nn.Module, seed: int) -> None:
    """One step's worth of change to weights and BatchNorm statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
        model.train()(torch.randn(2, 3, 8, 8, generator=gen))


@pytest.mark.parametrize('update_buffers,interval', [(True, 1), (False, 1), (True, 3)])
def test_same_average_as_mmdet_bit_for_bit(update_buffers, interval):
    model = _model()
    kwargs = dict(momentum=0.01, gamma=4, interval=interval, update_buffers=update_buffers)
    ours, theirs = SyncFreeExpMomentumEMA(model, **kwargs), ExpMomentumEMA(model, **kwargs)
    for step in range(8):
        _train(model, step)
        ours.update_parameters(model)
        theirs.update_parameters(model)
    mine, ref = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(ref) and int(mine['steps']) == 8
    for name in ref:
        assert torch.equal(mine[name], ref[name]), name
    assert not torch.equal(ref['module.0.weight'], model.state_dict()['0.weight'])  # averaged


def test_resume_continues_the_count_from_the_checkpoint():
    model = _model()
    ours, theirs = (cls(model, momentum=0.01, gamma=4, update_buffers=True)
                    for cls in (SyncFreeExpMomentumEMA, ExpMomentumEMA))
    for step in range(5):
        _train(model, step)
        theirs.update_parameters(model)
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))  # as EMAHook resumes
    _train(model, 5)
    ours.update_parameters(model)
    theirs.update_parameters(model)
    for name, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name


def test_an_update_reads_nothing_on_the_host():
    model = _model()
    ours, theirs = (cls(model, update_buffers=True)
                    for cls in (SyncFreeExpMomentumEMA, ExpMomentumEMA))
    for ema in (ours, theirs):
        ema.update_parameters(model)
        ema.update_parameters(model)
    with HostSyncCounter() as mine:
        ours.update_parameters(model)
    with HostSyncCounter() as ref:
        theirs.update_parameters(model)
    floating = sum(v.dtype.is_floating_point for v in model.state_dict().values())
    assert len(mine) == 0
    assert len(ref) == 2 + floating  # `if steps == 0`, `steps % interval`, float() per tensor


def test_registered_for_the_configs_ema_hook():
    from mmengine.registry import MODELS, DefaultScope
    for scope in ('mmdet', 'mmpose'):
        with DefaultScope.overwrite_default_scope(scope):
            ema = MODELS.build(dict(type='SyncFreeExpMomentumEMA', model=_model()))
        assert isinstance(ema, SyncFreeExpMomentumEMA)
