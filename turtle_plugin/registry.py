"""Where turtle_plugin's modules register.

The plugin owns no registry of its own: every module goes into the host libraries' registries, so
MMDetection and MMPose runners build it from a config. Pieces used by both a detection model
(MMDetection scope) and a keypoint model (MMPose scope) -- backbone, neck, head, losses, transforms,
datasets -- register into both with the one decorator of a :class:`BothScopes` object::

    from turtle_plugin.registry import MODELS

    @MODELS.register_module()
    class YOLOv7Backbone(BaseModule): ...

Scope-specific pieces use the host registry directly (``mmpose.registry.METRICS`` ...).
"""
from typing import Optional, Sequence

from mmdet.registry import DATASETS as MMDET_DATASETS
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmdet.registry import METRICS as MMDET_METRICS
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMDET_OPTIM_WRAPPER_CONSTRUCTORS
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS
from mmengine.registry import Registry
from mmpose.registry import DATASETS as MMPOSE_DATASETS
from mmpose.registry import HOOKS as MMPOSE_HOOKS
from mmpose.registry import METRICS as MMPOSE_METRICS
from mmpose.registry import MODELS as MMPOSE_MODELS
from mmpose.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMPOSE_OPTIM_WRAPPER_CONSTRUCTORS
from mmpose.registry import TASK_UTILS as MMPOSE_TASK_UTILS
from mmpose.registry import TRANSFORMS as MMPOSE_TRANSFORMS

__all__ = [
    'BothScopes', 'MODELS', 'TRANSFORMS', 'DATASETS', 'TASK_UTILS', 'METRICS', 'HOOKS',
    'OPTIM_WRAPPER_CONSTRUCTORS'
]


class BothScopes:
    """Registers one class into the MMDetection and the MMPose registry of a kind.

    Args:
        registries (Sequence[Registry]): the host registries, MMDetection's first. ``build``
            uses the first one.
    """

    def __init__(self, registries: Sequence[Registry]):
        self.registries = tuple(registries)

    def register_module(self, name: Optional[str] = None, force: bool = False):
        """Decorator: register the class under ``name`` (default: its ``__name__``) in each."""

        def _register(cls):
            for registry in self.registries:
                registry.register_module(name=name, force=force, module=cls)
            return cls

        return _register

    def get(self, name: str):
        return self.registries[0].get(name)

    def build(self, cfg, *args, **kwargs):
        return self.registries[0].build(cfg, *args, **kwargs)

    def __contains__(self, name: str) -> bool:
        return all(name in registry for registry in self.registries)

    def __repr__(self) -> str:
        names = ', '.join(f'{r.scope}.{r.name}' for r in self.registries)
        return f'BothScopes({names})'


MODELS = BothScopes([MMDET_MODELS, MMPOSE_MODELS])
TRANSFORMS = BothScopes([MMDET_TRANSFORMS, MMPOSE_TRANSFORMS])
DATASETS = BothScopes([MMDET_DATASETS, MMPOSE_DATASETS])
TASK_UTILS = BothScopes([MMDET_TASK_UTILS, MMPOSE_TASK_UTILS])
METRICS = BothScopes([MMDET_METRICS, MMPOSE_METRICS])
HOOKS = BothScopes([MMDET_HOOKS, MMPOSE_HOOKS])
OPTIM_WRAPPER_CONSTRUCTORS = BothScopes(
    [MMDET_OPTIM_WRAPPER_CONSTRUCTORS, MMPOSE_OPTIM_WRAPPER_CONSTRUCTORS])
