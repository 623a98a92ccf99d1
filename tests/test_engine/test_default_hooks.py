"""``default_hooks.NAME=None`` switches off the plugin's default hooks as MMEngine's own."""
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from turtle_plugin.engine import drop_disabled_default_hooks

from conftest import REPO, load_tool

KPT_CFG = str(REPO / 'configs' / 'tiger_kpt_tiny.py')
OFF = ['default_hooks.divergence_check=None', 'default_hooks.ema=None',
       'default_hooks.timer=None']


def test_drops_only_the_plugins_none_entries():
    """MMEngine's own names keep their None (its runner removes those hooks); the others go."""
    cfg = Config(dict(default_hooks=dict(timer=None, ema=None, checkpoint=dict(type='C'),
                                         divergence_check=None, logger=None)))
    assert drop_disabled_default_hooks(cfg) == ['ema', 'divergence_check']
    assert cfg.default_hooks == dict(timer=None, checkpoint=dict(type='C'), logger=None)
    assert drop_disabled_default_hooks(Config(dict())) == []


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_tools_build_a_runner_without_the_hooks_switched_off(tool, tmp_path):
    """Through the tools' --cfg-options: the runner has neither the plugin's hooks nor
    MMEngine's timer; a config given straight to MMEngine's runner fails on its bare assert,
    which is what the tools spare the user."""
    module = load_tool(tool)
    argv = [KPT_CFG] + (['model.pth'] if tool == 'test.py' else []) + [
        '--work-dir', str(tmp_path), '--cfg-options'] + OFF
    cfg = module.build_config(module.parse_args(argv))
    assert 'ema' not in cfg.default_hooks and 'divergence_check' not in cfg.default_hooks
    assert cfg.default_hooks.timer is None
    hooks = {type(h).__name__ for h in Runner.from_cfg(cfg).hooks}
    assert not hooks & {'DivergenceCheckHook', 'EMAHook', 'IterTimerHook'}
    assert {'CheckpointHook', 'CloseMosaicHook', 'KptSigmaWarmupHook'} <= hooks

    raw = Config.fromfile(KPT_CFG)
    raw.merge_from_dict(dict(work_dir=str(tmp_path / 'raw'), default_hooks=dict(ema=None)))
    with pytest.raises(AssertionError):
        Runner.from_cfg(raw)
