"""Suite-wide fixtures and helpers: the scripts under tools/ as modules (:func:`load_tool`), a
recipe shrunk to a few iterations (:func:`few_iterations`) and the warnings MMEngine's current
logger gives (:func:`captured_warnings`)."""
import importlib.util
import logging
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

import turtle_plugin  # noqa: F401  registers the plugin's modules, as custom_imports does

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_default_scope():
    """Each test starts without the default scope that an earlier test's runner or
    ``init_default_scope`` left behind (it is process-global in MMEngine), so a registry's
    ``build`` looks in that registry unless the test sets a scope itself."""
    saved = DefaultScope._instance_dict.copy()
    DefaultScope._instance_dict.clear()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.fixture(scope='module')
def one_torch_thread():
    """Forward passes on one thread for a whole test module (use it with
    ``pytestmark = pytest.mark.usefixtures('one_torch_thread')``): on a small machine shared with
    other jobs, OpenMP's threads wait for each other at every layer and a 2-thread forward can
    take 30x longer. The thread count is restored afterwards."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@contextmanager
def captured_warnings():
    """The records of the warnings logged to MMEngine's current logger inside the block
    (MMEngine's loggers do not reach pytest's caplog); test files import it with
    ``from conftest import captured_warnings``."""
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def load_tool(path: str) -> ModuleType:
    """A script under ``tools/`` as a module (the scripts are no package), e.g.
    ``load_tool('analysis/check_anchors.py')``; test files import it with
    ``from conftest import load_tool``.

    Args:
        path (str): the script, relative to ``tools/``.

    Returns:
        ModuleType: the executed script, named ``tools_<path with _ for />``.
    """
    name = 'tools_' + path.removesuffix('.py').replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, REPO / 'tools' / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def few_iterations(train_images: int = 4, batch_size: int = 2, val_images: Optional[int] = 2,
                   val_batch_size: Optional[int] = None, epochs: int = 1) -> Dict[str, Any]:
    """Config options that shrink a training recipe to a few iterations.

    ``epochs`` epochs of ``train_images / batch_size`` iterations, a validation after each one
    (no close-mosaic switch of the interval), no DataLoader worker processes, no 1000-iteration
    floor on the warm-up, no best-checkpoint search, a log line per iteration.

    Args:
        train_images (int): training images (the first ones of the split).
        batch_size (int): batch of every dataloader.
        val_images (int, optional): validation and test images; None keeps the whole split.
        val_batch_size (int, optional): batch of the validation and test dataloaders, when it
            differs from ``batch_size``.
        epochs (int): training epochs.

    Returns:
        dict: dotted keys to values, for ``Config.merge_from_dict`` or, through
        :func:`cfg_options`, ``--cfg-options``.
    """
    options = {
        'train_cfg.max_epochs': epochs, 'train_cfg.val_interval': 1,
        'train_cfg.dynamic_intervals': None,
        'default_hooks.param_scheduler.min_warmup_iters': 0,
        'default_hooks.logger.interval': 1, 'default_hooks.checkpoint.save_best': None,
    }
    for loader, images in (('train_dataloader', train_images), ('val_dataloader', val_images),
                           ('test_dataloader', val_images)):
        options.update({
            f'{loader}.batch_size': batch_size if loader == 'train_dataloader'
            else val_batch_size or batch_size,
            f'{loader}.num_workers': 0, f'{loader}.persistent_workers': False,
            f'{loader}.pin_memory': False})
        if images is not None:
            options[f'{loader}.dataset.indices'] = images
    return options


def cfg_options(options: Dict[str, Any]) -> List[str]:
    """``key=value`` arguments of ``--cfg-options`` for :func:`few_iterations`'s dict."""
    return [f'{key}={value}' for key, value in options.items()]
