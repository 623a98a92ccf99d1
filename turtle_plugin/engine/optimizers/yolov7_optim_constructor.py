"""YOLOv5/YOLOv7 parameter groups and weight-decay scaling (``train.py`` of YOLOv7).

Three groups, as the original: weights of convolutions and linear layers with weight decay
(``'decay'``), weights of norm layers, implicit layers and other 1-d parameters without
(``'no_decay'``), and every bias without (``'bias'``, the group whose learning rate warms up *down*
from ``warmup_bias_lr``, see :class:`YOLOv7ParamSchedulerHook`). The weight decay is scaled by
``total_batch_size / base_total_batch_size`` (the original's ``nbs = 64``), with the total batch
``batch_size_per_gpu * world_size * accumulative_counts`` (:func:`scale_weight_decay`). In a
runner the per-GPU batch is the train dataloader's, read at train start by
:class:`YOLOv7ParamSchedulerHook`: the configs do not repeat it, so it cannot go stale.
"""
import copy
from typing import Optional

import torch.nn as nn
from mmengine.dist import get_world_size
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS

from turtle_plugin.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['YOLOv7OptimWrapperConstructor', 'scale_weight_decay', 'yolov7_param_groups']

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
          nn.modules.instancenorm._InstanceNorm)


def yolov7_param_groups(model: nn.Module) -> dict:
    """Split trainable parameters into the original's three groups.

    Args:
        model (nn.Module): the model (unwrapped).

    Returns:
        dict: ``{'no_decay': [...], 'decay': [...], 'bias': [...]}`` lists of parameters, each
        parameter in exactly one list.
    """
    groups = dict(no_decay=[], decay=[], bias=[])
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if name == 'bias':
                groups['bias'].append(param)
            elif isinstance(module, _NORMS) or param.ndim <= 1 or 'implicit' in name:
                groups['no_decay'].append(param)
            else:
                groups['decay'].append(param)
    return groups


def scale_weight_decay(optim_wrapper: OptimWrapper, batch_size_per_gpu: int) -> float:
    """Set the ``'decay'`` group's weight decay for the total batch, as YOLOv7's ``train.py``:
    ``weight_decay * batch_size_per_gpu * world_size * accumulate / nbs``, from the decay at the
    nominal batch ``nbs`` that :class:`YOLOv7OptimWrapperConstructor` keeps in the group.

    Args:
        optim_wrapper (OptimWrapper): a wrapper built by the constructor.
        batch_size_per_gpu (int): images per process and step.

    Returns:
        float: the weight decay set.
    """
    total = batch_size_per_gpu * get_world_size() * optim_wrapper._accumulative_counts
    for group in optim_wrapper.param_groups:
        if group.get('name') == 'decay' and 'nominal_weight_decay' in group:
            group['weight_decay'] = group['nominal_weight_decay'] * total / group['nominal_batch']
            return group['weight_decay']
    raise ValueError('no parameter group named "decay" with a nominal_weight_decay: build the '
                     'optimizer with YOLOv7OptimWrapperConstructor')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class YOLOv7OptimWrapperConstructor:
    """Build an optimizer wrapper with YOLOv7's parameter groups.

    Config::

        optim_wrapper = dict(
            type='OptimWrapper',
            constructor='YOLOv7OptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.01, momentum=0.937, nesterov=True,
                           weight_decay=5e-4),
            paramwise_cfg=dict(base_total_batch_size=64))

    Args:
        optim_wrapper_cfg (dict): the ``optim_wrapper`` config; its ``optimizer.weight_decay`` is the
            decay at ``base_total_batch_size``.
        paramwise_cfg (dict, optional): ``base_total_batch_size`` (default 64) and, for a wrapper
            used outside a runner, ``batch_size_per_gpu``. Without it the weight decay stays at
            its nominal value until :class:`YOLOv7ParamSchedulerHook` scales it to the train
            dataloader's batch at train start.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        self.optim_wrapper_cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        if 'optimizer' not in self.optim_wrapper_cfg:
            raise KeyError('optim_wrapper_cfg needs an "optimizer" entry')
        self.optimizer_cfg = self.optim_wrapper_cfg.pop('optimizer')
        paramwise_cfg = dict(paramwise_cfg or {})
        self.base_total_batch_size = paramwise_cfg.pop('base_total_batch_size', 64)
        self.batch_size_per_gpu = paramwise_cfg.pop('batch_size_per_gpu', None)
        if paramwise_cfg:
            raise KeyError(f'unknown paramwise_cfg keys for YOLOv7OptimWrapperConstructor: '
                           f'{sorted(paramwise_cfg)}')

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if is_model_wrapper(model):
            model = model.module
        optimizer_cfg = copy.deepcopy(self.optimizer_cfg)
        wrapper_cfg = copy.deepcopy(self.optim_wrapper_cfg)
        weight_decay = optimizer_cfg.pop('weight_decay', 0.0)
        groups = yolov7_param_groups(model)
        optimizer_cfg['params'] = [
            dict(params=groups['no_decay'], name='no_decay', weight_decay=0.0),
            dict(params=groups['decay'], name='decay', weight_decay=weight_decay,
                 nominal_weight_decay=weight_decay, nominal_batch=self.base_total_batch_size),
            dict(params=groups['bias'], name='bias', weight_decay=0.0),
        ]
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        wrapper = OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))
        if self.batch_size_per_gpu is not None:
            scale_weight_decay(wrapper, self.batch_size_per_gpu)
        return wrapper
