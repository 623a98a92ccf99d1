"""``num_workers='auto'``: DataLoader workers sized to the CPUs this process may run on.

A DataLoader with more busy worker processes than CPUs gets no more samples per second, only
more memory and more context switches; with fewer it leaves CPUs idle while the model waits for
data. ``'auto'`` asks for one worker per usable CPU (``os.sched_getaffinity``: what taskset,
cgroups' cpusets and Slurm leave to the process, not the machine's count), less one CPU for the
main process (which collates nothing but runs the model, the pin-memory thread and the logging),
capped by the batch size and by ``max_workers``. MMEngine's ``Runner`` passes ``num_workers``
straight to ``torch.utils.data.DataLoader``, so ``'auto'`` is resolved in the config before the
runner is built (``tools/train.py`` and ``tools/test.py`` call :func:`resolve_num_workers`).
"""
import os
from typing import Optional

from mmengine.config import Config

__all__ = ['usable_cpus', 'auto_num_workers', 'resolve_num_workers']

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` off Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def auto_num_workers(batch_size: int, cpus: Optional[int] = None, max_workers: int = 8) -> int:
    """Worker processes for one DataLoader: ``min(cpus - 1, batch_size, max_workers)``, at
    least 0 (a single CPU loads in the main process).

    Args:
        batch_size (int): samples per batch; more workers than that would each make part of a
            batch and only add memory.
        cpus (int, optional): usable CPUs; default :func:`usable_cpus`.
        max_workers (int): upper bound (each worker holds its own copy of the dataset's
            decoded-image cache).

    Returns:
        int: the number of workers.
    """
    cpus = usable_cpus() if cpus is None else cpus
    return max(0, min(cpus - 1, batch_size, max_workers))


def resolve_num_workers(cfg: Config, cpus: Optional[int] = None) -> None:
    """Replace ``num_workers='auto'`` of the config's dataloaders by :func:`auto_num_workers`;
    ``persistent_workers`` is turned off where that leaves no worker (DataLoader refuses it).

    Args:
        cfg (Config): the config; updated in place.
        cpus (int, optional): usable CPUs; default :func:`usable_cpus`.
    """
    for name in DATALOADERS:
        loader = cfg.get(name)
        if not loader or loader.get('num_workers') != 'auto':
            continue
        loader['num_workers'] = auto_num_workers(loader.get('batch_size', 1), cpus)
        if loader['num_workers'] == 0:
            loader['persistent_workers'] = False
