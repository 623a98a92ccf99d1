"""YOLOv5/v7's exponential-momentum EMA of the weights (``ModelEMA`` in ``utils/torch_utils.py``)
with an update that reads no tensor on the host and launches a few multi-tensor kernels.

MMDetection's ``ExpMomentumEMA`` (the same average) keeps the step count in a tensor and turns
it into a Python number once per weight (``float(1 + steps)``, 293 times an iteration for
YOLOv7-tiny with ``update_buffers=True``), plus twice more for ``if steps == 0`` /
``steps % interval``, then averages weight by weight (two kernels per tensor). Under MMEngine's
``EMAHook`` that tensor stays on the CPU (``BaseAveragedModel`` makes it with ``device=None``),
so these reads are host work rather than waits for the GPU, but they are ~300 tensor ops and
~600 kernel launches an iteration that the original's ``ModelEMA`` (a Python int) does not
make. Here the count is
also kept as a Python int, read from the tensor once (after construction or loading a
checkpoint), the momentum is computed once per update, and the average is two ``torch._foreach``
calls per dtype and device. The ``steps`` buffer still counts, so checkpoints are those of
``ExpMomentumEMA``, and the values are the same: the same two element-wise operations in the
same order (``test_ema.py`` checks bit-equality).
"""
import math
from collections import defaultdict
from typing import Optional

import torch
import torch.nn as nn
from mmdet.models.layers import ExpMomentumEMA

from turtle_plugin.registry import MODELS

__all__ = ['SyncFreeExpMomentumEMA']


@MODELS.register_module()
class SyncFreeExpMomentumEMA(ExpMomentumEMA):
    """``ExpMomentumEMA`` whose update reads no tensor value and averages with foreach ops.

    ``momentum_t = (1 - momentum) * exp(-(1 + t) / gamma) + momentum``; every ``interval``
    steps each floating tensor becomes ``avg * (1 - momentum_t) + src * momentum_t``.

    Args:
        model (nn.Module): the model to average.
        momentum (float): the momentum it tends to.
        gamma (int): how many updates the warm-up of the momentum lasts.
        interval (int): update every ``interval`` steps.
        device (torch.device, optional): where to keep the average; the model's by default.
        update_buffers (bool): average the buffers too (BatchNorm statistics), as YOLOv7 does.
    """

    def __init__(self,
                 model: nn.Module,
                 momentum: float = 0.0002,
                 gamma: int = 2000,
                 interval: int = 1,
                 device: Optional[torch.device] = None,
                 update_buffers: bool = False):
        super().__init__(model, momentum=momentum, gamma=gamma, interval=interval, device=device,
                         update_buffers=update_buffers)
        self._host_steps: Optional[int] = None  # read from the `steps` buffer when needed

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._host_steps = None  # a checkpoint brought its own count

    def momentum_at(self, steps: int) -> float:
        """The momentum of update number ``steps`` (0-based)."""
        return (1 - self.momentum) * math.exp(-float(1 + steps) / self.gamma) + self.momentum

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """Average ``model``'s weights (and buffers) into this EMA.

        Args:
            model (nn.Module): the model being trained, with this EMA's parameter names.
        """
        if self._host_steps is None:
            self._host_steps = int(self.steps)  # once per run or resume
        steps = self._host_steps
        source = model.state_dict() if self.update_buffers else dict(model.named_parameters())
        if steps == 0:
            for name, avg in self.avg_parameters.items():
                avg.data.copy_(source[name].data)
        elif steps % self.interval == 0:
            momentum = self.momentum_at(steps)
            groups = defaultdict(lambda: ([], []))  # foreach wants one dtype and device
            for name, avg in self.avg_parameters.items():
                if avg.dtype.is_floating_point:
                    averaged, sources = groups[(avg.dtype, avg.device)]
                    averaged.append(avg.data)
                    sources.append(source[name].data.to(avg.device))
            for averaged, sources in groups.values():
                torch._foreach_mul_(averaged, 1 - momentum)
                torch._foreach_add_(averaged, sources, alpha=momentum)
        if not self.update_buffers:  # keep the buffers those of the model
            for b_avg, b_src in zip(self.module.buffers(), model.buffers()):
                b_avg.data.copy_(b_src.data.to(b_avg.device))
        self.steps += 1
        self._host_steps = steps + 1
