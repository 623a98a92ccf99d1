"""Check the head's anchors against the training boxes at train start, and re-fit them if they
fit badly (YOLOv5/YOLOv7 "autoanchor", ``utils/autoanchor.py::check_anchors``).

The head's ``anchors`` buffer is not saved in checkpoints (the config is the source of truth),
so anchors this hook sets are written into the checkpoint's ``meta['autoanchor']`` and put back
on the head when such a checkpoint is loaded: resuming, testing or fine-tuning from it then uses
the anchors the weights were trained with. Keep the hook in the config of any run that loads
such a checkpoint.
"""
from typing import List, Optional

import torch
from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from turtle_plugin.models.heads import YOLOv7HeadCore
from turtle_plugin.models.task_modules import (anchors_to_levels, check_anchor_fit,
                                               gt_box_sizes, kmeans_anchors)
from turtle_plugin.registry import HOOKS

__all__ = ['AutoAnchorHook']


@HOOKS.register_module()
class AutoAnchorHook(Hook):
    """Re-estimate the anchors of every YOLOv7 head (``YOLOv7Head``, ``YOLOv7KptHead``) when
    their best possible recall on the training boxes is below ``bpr_threshold``.

    The training set's boxes are scaled as the letterbox scales them (long side to
    ``img_size``). New anchors (k-means + mutation search, :func:`kmeans_anchors`) replace the
    old ones only if their recall is higher. Nothing is estimated when anchors were restored
    from a checkpoint.

    Args:
        thr (float, optional): anchor-matching side-ratio limit; None reads the head's
            ``assigner.anchor_t`` (4.0 in YOLOv7).
        bpr_threshold (float): re-estimate below this best possible recall (0.98, YOLOv7).
        img_size (int, optional): training image side; None reads the head's ``img_size``.
        gen (int): mutation generations of the search.
        seed (int): seed of the search, for the same anchors on every run and process.
    """

    priority = 'NORMAL'
    meta_key = 'autoanchor'

    def __init__(self,
                 thr: Optional[float] = None,
                 bpr_threshold: float = 0.98,
                 img_size: Optional[int] = None,
                 gen: int = 1000,
                 seed: int = 0):
        if not 0 < bpr_threshold <= 1:
            raise ValueError(f'bpr_threshold is a recall in (0, 1], got {bpr_threshold}')
        if thr is not None and thr <= 1:
            raise ValueError(f'thr is a side-ratio limit and must be > 1, got {thr}')
        self.thr = thr
        self.bpr_threshold = bpr_threshold
        self.img_size = img_size
        self.gen = gen
        self.seed = seed
        self._restored = False

    @staticmethod
    def _heads(runner) -> List[YOLOv7HeadCore]:
        """The YOLOv7 heads of the model and of any averaged (EMA) copy held by a hook."""
        models = [runner.model.module if is_model_wrapper(runner.model) else runner.model]
        models += [hook.ema_model for hook in runner.hooks
                   if getattr(hook, 'ema_model', None) is not None]
        heads = [m for model in models for m in model.modules() if isinstance(m, YOLOv7HeadCore)]
        if not heads:
            raise TypeError('AutoAnchorHook found no YOLOv7 head (YOLOv7Head, YOLOv7KptHead) in '
                            'the model')
        return heads

    @staticmethod
    def _set_anchors(heads: List[YOLOv7HeadCore], anchors: list) -> None:
        for head in heads:
            value = torch.as_tensor(anchors, dtype=head.anchors.dtype)
            if value.shape != head.anchors.shape:
                raise ValueError(f'anchors of shape {tuple(value.shape)} do not fit the head\'s '
                                 f'{tuple(head.anchors.shape)}')
            head.anchors.copy_(value.to(head.anchors.device))

    def before_train(self, runner) -> None:
        """Measure the anchors' best possible recall; re-fit them when it is too low."""
        if self._restored:
            runner.logger.info('AutoAnchorHook: anchors restored from the checkpoint, kept')
            return
        heads = self._heads(runner)
        anchors = heads[0].anchors.detach().cpu()
        result = [None]
        if is_main_process():
            result[0] = self._fit(runner, heads[0], anchors)
        broadcast_object_list(result)  # the same anchors on every process
        if result[0] is not None:
            self._set_anchors(heads, result[0])

    def _fit(self, runner, head: YOLOv7HeadCore, anchors: torch.Tensor) -> Optional[list]:
        """New per-level anchors, or None to keep the current ones."""
        img_size = self.img_size or head.img_size
        thr = self.thr or getattr(head.assigner, 'anchor_t', 4.0)
        wh = gt_box_sizes(runner.train_dataloader.dataset, img_size)
        if len(wh) == 0:
            runner.logger.warning('AutoAnchorHook: the training set has no boxes, anchors kept')
            return None
        bpr, aat = check_anchor_fit(wh, anchors.view(-1, 2), thr)
        runner.logger.info(f'AutoAnchorHook: {len(wh)} boxes at {img_size} px, anchors/target '
                           f'= {aat:.2f}, best possible recall = {bpr:.4f}')
        if bpr >= self.bpr_threshold:
            return None
        new = kmeans_anchors(wh, n=anchors.shape[0] * anchors.shape[1], thr=thr, gen=self.gen,
                             seed=self.seed)
        levels = anchors_to_levels(new, anchors.shape[0])  # whole pixels, as configs write them
        new_bpr, _ = check_anchor_fit(wh, levels, thr)
        if new_bpr <= bpr:
            runner.logger.info(f'AutoAnchorHook: re-fitted anchors reach {new_bpr:.4f}, no '
                               f'better; anchors kept')
            return None
        runner.logger.info(f'AutoAnchorHook: new anchors, best possible recall {new_bpr:.4f} '
                           f'(saved in checkpoints; paste into the config to keep them):\n'
                           f'    anchors = {levels}')
        return levels

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Record the head's anchors in ``checkpoint['meta']['autoanchor']``."""
        anchors = self._heads(runner)[0].anchors.detach().cpu().tolist()
        checkpoint.setdefault('meta', {})[self.meta_key] = dict(anchors=anchors)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Put anchors recorded by this hook back on the heads."""
        saved = checkpoint.get('meta', {}).get(self.meta_key)
        if saved is None:
            return
        self._set_anchors(self._heads(runner), saved['anchors'])
        self._restored = True
        runner.logger.info(f'AutoAnchorHook: anchors from the checkpoint: {saved["anchors"]}')
