"""Distributed training on machines without a GPU (gloo), for CI and debugging.

MMEngine's ``init_dist('pytorch')`` and ``init_dist('slurm')`` call ``torch.cuda.set_device`` and
its DDP wrapper gets ``device_ids=[LOCAL_RANK]``; both fail without CUDA.
:func:`setup_cpu_distributed` initialises the process group with gloo itself (MMEngine then
skips its own init) and builds the DDP wrapper with ``device_ids=None`` as CPU modules require.
For Slurm it first derives ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR`` from
Slurm's variables as MMEngine's ``_init_dist_slurm`` does. With CUDA it changes nothing.
"""
import os
import subprocess

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

__all__ = ['setup_cpu_distributed']

_REQUIRED = {
    'pytorch': (('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
                'start the run with tools/dist_train.sh (torchrun)'),
    'slurm': (('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
              'start the run with tools/slurm_train.sh (srun)'),
}


def _slurm_environment() -> None:
    """torch.distributed's variables from Slurm's, as MMEngine's ``_init_dist_slurm``: rank and
    world size from ``SLURM_PROCID`` / ``SLURM_NTASKS``, the master is the first host of
    ``SLURM_NODELIST`` unless ``MASTER_ADDR`` is set, the port ``MASTER_PORT`` or 29500."""
    if 'MASTER_ADDR' not in os.environ:
        nodelist = os.environ['SLURM_NODELIST']
        proc = subprocess.run(['scontrol', 'show', 'hostnames', nodelist], capture_output=True,
                              text=True)
        hosts = proc.stdout.split()
        if proc.returncode != 0 or not hosts:
            raise RuntimeError(f'--launcher slurm: `scontrol show hostnames {nodelist}` gave no '
                               f'host ({proc.stderr.strip()}); set MASTER_ADDR')
        os.environ['MASTER_ADDR'] = hosts[0]
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a CPU-only distributed run launched by torchrun or srun.

    Args:
        cfg (Config): the config the runner is built from; updated in place.
        launcher (str): the ``--launcher`` value; ``'pytorch'`` and ``'slurm'`` are handled.

    Returns:
        bool: True if a gloo process group was initialised here.
    """
    if launcher not in _REQUIRED or torch.cuda.is_available() or torch_dist.is_initialized():
        return False
    keys, how = _REQUIRED[launcher]
    for key in keys:
        if key not in os.environ:
            raise RuntimeError(f'--launcher {launcher} needs the {key} environment variable; '
                               f'{how}.')
    if launcher == 'slurm':
        _slurm_environment()
    torch_dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    env_cfg = cfg.setdefault('env_cfg', dict())
    env_cfg.setdefault('dist_cfg', dict())['backend'] = 'gloo'
    return True
