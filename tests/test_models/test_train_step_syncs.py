"""The training step of the configs -- forward, loss (with assignment), MMEngine's
``parse_losses``, ``optim_wrapper.update_params`` -- on a real batch: how many calls in it would
synchronise host and CUDA device (pinned, so that one more fails), the same step under CUDA's
sync debug mode where a GPU exists, and the values it computes, against values recorded before
the step was made sync-free (``tests/data/train_step_reference.pt``)."""
import pytest
import torch

from train_step_helpers import REFERENCE, REFERENCE_CONFIGS, build_step, step_values
from turtle_plugin.testing import HostSyncCounter

pytestmark = pytest.mark.usefixtures('one_torch_thread')

# syncs per step; BENCHMARKS.md ("Host synchronisations") lists what was removed and why
PINNED_SYNCS = {'tiger_kpt_tiny.py': 0, 'turtle_det_tiny.py': 0, 'turtle_det.py': 0}


def _step_syncs(config: str) -> HostSyncCounter:
    _, _, _, step = build_step(config)
    step()  # the first step may set things up once
    with HostSyncCounter() as syncs:
        step()
    return syncs


@pytest.mark.parametrize('config', ['tiger_kpt_tiny.py', 'turtle_det_tiny.py'])
def test_step_host_syncs_are_pinned(config):
    syncs = _step_syncs(config)
    assert len(syncs) == PINNED_SYNCS[config], syncs.report()


@pytest.mark.slow
def test_step_host_syncs_are_pinned_for_the_large_detector():
    syncs = _step_syncs('turtle_det.py')
    assert len(syncs) == PINNED_SYNCS['turtle_det.py'], syncs.report()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('config', ['tiger_kpt_tiny.py', 'turtle_det_tiny.py'])
def test_step_runs_under_cuda_sync_debug_mode_error(config):
    _, _, _, step = build_step(config, device='cuda')
    step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        log_vars = step()
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert torch.isfinite(log_vars['loss']).item()


@pytest.mark.parametrize('config', REFERENCE_CONFIGS)
def test_step_values_match_those_recorded_before(config):
    expected = torch.load(REFERENCE, weights_only=True)[config]
    values = step_values(config)
    assert list(values) == list(expected)
    for name, value in expected.items():
        tol = dict(rtol=1e-6, atol=1e-6) if value.dim() == 0 else dict(rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(values[name], value, **tol, msg=lambda m: f'{name}: {m}')
