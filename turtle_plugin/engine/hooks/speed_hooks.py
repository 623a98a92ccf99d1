"""Training-speed switches as hooks: channels-last memory format and ``torch.compile`` of the
network modules. Both are off unless a config lists them in ``custom_hooks``::

    custom_hooks += [dict(type='ChannelsLastHook'), dict(type='CompileModelHook')]
"""
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from turtle_plugin.registry import HOOKS

__all__ = ['ChannelsLastHook', 'CompileModelHook']


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Store the model's 4-d weights in channels-last (NHWC) memory format before the run.

    Convolutions given a channels-last weight return channels-last outputs, so the whole
    network runs NHWC (Tensor Core friendly on CUDA with fp16/bf16) while its inputs stay as
    the data preprocessor makes them. It runs before :class:`mmengine.hooks.EMAHook` makes its
    copy of the model (priority ``VERY_HIGH``), so the EMA model is channels-last too.
    Checkpoints are unaffected: ``state_dict`` tensors are saved with their values, and a
    channels-last weight loads into a contiguous one and vice versa.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        _unwrap(runner.model).to(memory_format=torch.channels_last)


@HOOKS.register_module()
class CompileModelHook(Hook):
    """``torch.compile`` the network's modules in place before training and testing.

    Unlike MMEngine's ``cfg.compile`` (which compiles the whole ``train_step``, data
    preprocessing and optimizer step included), this compiles only the modules named, by
    default the backbone, the neck and the head's conv module: the loss and the assignment,
    whose shapes change with the number of objects, stay eager.

    Args:
        modules (Sequence[str]): dotted module paths inside the (unwrapped) model. A path that
            does not exist is an error, except one starting at a missing ``neck``, ``head`` or
            ``bbox_head`` (models have one kind of head, and may have no neck).
        compile_kwargs (dict, optional): arguments of ``torch.compile`` (``mode``, ``dynamic``,
            ``backend``...).
    """

    priority = 'VERY_HIGH'
    OPTIONAL = ('neck', 'head', 'bbox_head')

    def __init__(self,
                 modules: Sequence[str] = ('backbone', 'neck', 'head.head_module',
                                           'bbox_head.head_module'),
                 compile_kwargs: Optional[dict] = None) -> None:
        self.modules = tuple(modules)
        self.compile_kwargs = dict(compile_kwargs or {})
        self.compiled: list = []

    def _compile(self, runner) -> None:
        model = _unwrap(runner.model)
        for path in self.modules:
            names = path.split('.')
            if names[0] in self.OPTIONAL and not hasattr(model, names[0]):
                continue  # keypoint models have `head`, detection ones `bbox_head`; no neck
            module = model
            for name in names:
                if not hasattr(module, name):
                    raise ValueError(f'CompileModelHook: the model has no module {path!r}')
                module = getattr(module, name)
                if module is None:  # e.g. a model without a neck
                    break
            if module is None:
                continue
            if path not in self.compiled:
                module.compile(**self.compile_kwargs)
                self.compiled.append(path)

    def before_train(self, runner) -> None:
        self._compile(runner)

    def before_test(self, runner) -> None:
        self._compile(runner)
