from . import hooks, optimizers
from .checkpoint import allow_mmengine_checkpoint_types, mmengine_checkpoint_types
from .default_hooks import drop_disabled_default_hooks
from .dist import setup_cpu_distributed
from .workers import auto_num_workers, resolve_num_workers, usable_cpus

__all__ = [
    'hooks', 'optimizers', 'allow_mmengine_checkpoint_types', 'mmengine_checkpoint_types',
    'drop_disabled_default_hooks', 'setup_cpu_distributed', 'auto_num_workers',
    'resolve_num_workers', 'usable_cpus'
]
