"""--resume continues a real recipe exactly: a run killed after epoch 2 and resumed ends with the
same weights, EMA weights, optimizer state and schedule as an uninterrupted run (CPU)."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from conftest import few_iterations

REPO = Path(__file__).resolve().parents[2]


class _Killed(RuntimeError):
    pass


@HOOKS.register_module(force=True)
class _KillAfterEpoch(Hook):
    """Raises once epoch ``epoch``'s checkpoint is written, like a run killed at that moment."""
    priority = 'LOWEST'

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        # runner.epoch counts finished epochs only after this hook
        if runner.epoch + 1 == self.epoch:
            raise _Killed(f'killed after epoch {self.epoch}')


def _cfg(work_dir, kill_after=None, resume=False):
    cfg = Config.fromfile(REPO / 'configs' / 'tiger_kpt_tiny.py')
    cfg.work_dir = str(work_dir)
    cfg.resume = resume
    # validating after every epoch: validation between epochs must not shift the randomness
    cfg.merge_from_dict(few_iterations(train_images=4, batch_size=2, val_images=2, epochs=3))
    # the last epoch switches pipeline (the config's part of the epochs, a third of 3 here):
    # resume must honour it
    assert cfg.default_hooks.close_mosaic.num_last_epochs is None
    cfg.default_hooks.close_mosaic.last_ratio = 1 / 3
    cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.checkpoint.save_best = None
    cfg.default_hooks.checkpoint.max_keep_ckpts = -1
    if kill_after is not None:
        cfg.custom_hooks.append(dict(type='_KillAfterEpoch', epoch=kill_after))
    cfg.experiment_name = f'{Path(work_dir).name}_{kill_after}_{resume}'
    return cfg


@pytest.mark.slow
def test_killed_and_resumed_run_matches_the_uninterrupted_run(tmp_path):
    Runner.from_cfg(_cfg(tmp_path / 'straight')).train()

    killed = Runner.from_cfg(_cfg(tmp_path / 'resumed', kill_after=2))
    with pytest.raises(_Killed):
        killed.train()
    assert not (tmp_path / 'resumed' / 'epoch_3.pth').exists()
    resumed = Runner.from_cfg(_cfg(tmp_path / 'resumed', resume=True))
    resumed.train()
    assert resumed.epoch == 3

    load = lambda p: torch.load(p, map_location='cpu', weights_only=True)  # noqa: E731
    a = load(tmp_path / 'straight' / 'epoch_3.pth')
    b = load(tmp_path / 'resumed' / 'epoch_3.pth')
    assert a['meta']['iter'] == b['meta']['iter'] == 6
    for key in ('state_dict', 'ema_state_dict'):
        assert a[key].keys() == b[key].keys()
        for name, value in a[key].items():
            torch.testing.assert_close(b[key][name], value, rtol=0, atol=0, msg=f'{key}.{name}')
    for ga, gb in zip(a['optimizer']['param_groups'], b['optimizer']['param_groups']):
        assert ga['lr'] == gb['lr'] and ga['momentum'] == gb['momentum']
    for sa, sb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        torch.testing.assert_close(sb['momentum_buffer'], sa['momentum_buffer'], rtol=0, atol=0)
