"""num_workers='auto': the worker count from the usable CPUs, resolved before the runner."""
import os

import pytest
from mmengine.config import Config

from conftest import REPO, load_tool
from turtle_plugin.engine import auto_num_workers, resolve_num_workers, usable_cpus


@pytest.mark.parametrize('batch, cpus, expected', [
    (64, 16, 8),  # the 16-core GPU host: 15 CPUs left beside the main process, capped at 8
    (64, 2, 1),  # this 2-core VM
    (4, 16, 4),  # never more workers than samples in a batch
    (8, 1, 0),  # one CPU: load in the main process
])
def test_auto_num_workers(batch, cpus, expected):
    assert auto_num_workers(batch, cpus) == expected


def test_auto_num_workers_cap_and_default_cpus():
    assert auto_num_workers(64, 16, max_workers=14) == 14
    assert usable_cpus() == len(os.sched_getaffinity(0))
    assert auto_num_workers(64) == min(usable_cpus() - 1, 8)


def test_resolve_replaces_only_auto():
    cfg = Config(dict(
        train_dataloader=dict(batch_size=64, num_workers='auto', persistent_workers=True),
        val_dataloader=dict(batch_size=8, num_workers=3, persistent_workers=True),
        test_dataloader=dict(batch_size=2, num_workers='auto', persistent_workers=True)))
    resolve_num_workers(cfg, cpus=16)
    assert cfg.train_dataloader.num_workers == 8 and cfg.train_dataloader.persistent_workers
    assert cfg.val_dataloader.num_workers == 3
    assert cfg.test_dataloader.num_workers == 2
    resolve_num_workers(cfg, cpus=16)  # nothing left to do
    assert cfg.train_dataloader.num_workers == 8


def test_resolve_without_workers_turns_persistence_off():
    cfg = Config(dict(train_dataloader=dict(batch_size=8, num_workers='auto',
                                            persistent_workers=True)))
    resolve_num_workers(cfg, cpus=1)
    assert cfg.train_dataloader.num_workers == 0
    assert cfg.train_dataloader.persistent_workers is False  # DataLoader refuses it with 0


@pytest.mark.parametrize('tool, extra', [('train.py', []), ('test.py', ['model.pth'])])
def test_tools_resolve_auto_workers(tool, extra):
    module = load_tool(tool)
    args = module.parse_args([str(REPO / 'configs/tiger_kpt_tiny.py'), *extra, '--cfg-options',
                              'train_dataloader.num_workers=auto',
                              'val_dataloader.num_workers=auto'])
    cfg = module.build_config(args)
    expected = auto_num_workers(8)  # the config's batch of 8
    assert cfg.train_dataloader.num_workers == expected
    assert cfg.val_dataloader.num_workers == expected
