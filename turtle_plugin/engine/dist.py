"""Distributed training on machines without a GPU (gloo), for CI and debugging.

MMEngine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` and wraps the model with
``device_ids=[LOCAL_RANK]``; both fail without CUDA. :func:`setup_cpu_distributed` initialises the
process group with gloo itself (MMEngine then skips its own init) and builds the DDP wrapper with
``device_ids=None`` as CPU modules require. With CUDA it changes nothing.
"""
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

__all__ = ['setup_cpu_distributed']


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a CPU-only distributed run launched by torchrun.

    Args:
        cfg (Config): the config the runner is built from; updated in place.
        launcher (str): the ``--launcher`` value; only ``'pytorch'`` is handled.

    Returns:
        bool: True if a gloo process group was initialised here.
    """
    if launcher != 'pytorch' or torch.cuda.is_available() or torch_dist.is_initialized():
        return False
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        if key not in os.environ:
            raise RuntimeError(f'--launcher pytorch needs the {key} environment variable; '
                               'start the run with tools/dist_train.sh (torchrun).')
    torch_dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    env_cfg = cfg.setdefault('env_cfg', dict())
    env_cfg.setdefault('dist_cfg', dict())['backend'] = 'gloo'
    return True
