"""AutoAnchorHook: re-fits poorly fitting anchors at train start, keeps good ones, and carries
the anchors through checkpoints (the head's ``anchors`` buffer is not saved)."""
import logging

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import EMAHook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import DataLoader, Dataset

import turtle_plugin  # noqa: F401
from turtle_plugin.engine.hooks import AutoAnchorHook
from turtle_plugin.models.heads import YOLOv7Head
from turtle_plugin.models.task_modules import check_anchor_fit

IMG = 256
# a poor fit for the boxes below: only the 120x200 cluster is within 4x of any of them
BAD_ANCHORS = [[(300, 300)], [(310, 310)], [(320, 320)]]
GOOD_ANCHORS = [[(10, 20)], [(50, 30)], [(120, 200)]]


class BoxSizes(Dataset):
    """One 512x256 image per box (long side 512: sizes halve at 256), MMPose-style infos."""

    def __init__(self, seed=0, per_cluster=20):
        rng = np.random.default_rng(seed)
        centres = np.array([[10., 20.], [50., 30.], [120., 200.]]) * 2  # at 512
        self.wh = np.concatenate([c * np.exp(rng.normal(0, 0.05, (per_cluster, 2)))
                                  for c in centres])

    def __len__(self):
        return len(self.wh)

    def get_data_info(self, index):
        w, h = self.wh[index]
        return dict(width=512, height=256, bbox=np.array([[0, 0, w, h]], np.float32))

    def __getitem__(self, index):
        return dict(inputs=torch.zeros(1))


class AnchorNet(BaseModel):
    """Just a YOLOv7Head (one anchor per level), with a zero loss to train on."""

    def __init__(self, anchors=BAD_ANCHORS):
        super().__init__()
        self.head = YOLOv7Head(
            head_module=dict(type='YOLOv7HeadModule', num_classes=1, in_channels=[2, 2, 2],
                             num_anchors=1),
            img_size=IMG, anchors=anchors, assigner=dict(type='YOLOv5Assigner', anchor_t=4.0))

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        zero = sum(p.sum() for p in self.parameters()) * 0
        return dict(loss=zero) if mode == 'loss' else []


def _runner(tmp_path, model, hooks, **kwargs):
    return Runner(
        model=model, work_dir=str(tmp_path),
        train_dataloader=DataLoader(BoxSizes(), batch_size=30, collate_fn=pseudo_collate),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)),
        custom_hooks=hooks, default_hooks=dict(logger=None, checkpoint=dict(
            type='CheckpointHook', interval=1)),
        log_level=logging.WARNING, experiment_name=f'autoanchor_{tmp_path.name}', **kwargs)


def test_refits_bad_anchors_on_every_head_and_saves_them(tmp_path):
    ema = EMAHook()
    runner = _runner(tmp_path, AnchorNet(), [AutoAnchorHook(gen=100), ema])
    wh = BoxSizes().wh / 2  # at the training size
    assert check_anchor_fit(wh, BAD_ANCHORS)[0] == pytest.approx(1 / 3)
    runner.train()
    anchors = runner.model.head.anchors
    assert check_anchor_fit(wh, anchors)[0] == 1.0
    # one anchor per cluster, smallest on the finest level, whole pixels
    np.testing.assert_allclose(anchors.view(3, 2).numpy(), [[10, 20], [50, 30], [120, 200]],
                               rtol=0.1)
    assert torch.equal(anchors, anchors.round())
    assert torch.equal(ema.ema_model.module.head.anchors, anchors)  # the averaged copy too
    checkpoint = torch.load(tmp_path / 'epoch_1.pth', map_location='cpu', weights_only=False)
    assert checkpoint['meta']['autoanchor']['anchors'] == anchors.tolist()
    assert 'head.anchors' not in checkpoint['state_dict']  # not a persistent buffer


def test_keeps_anchors_that_fit(tmp_path):
    runner = _runner(tmp_path, AnchorNet(GOOD_ANCHORS), [AutoAnchorHook(gen=100)])
    runner.train()
    assert runner.model.head.anchors.view(3, 2).tolist() == [[10, 20], [50, 30], [120, 200]]


def test_loading_a_checkpoint_restores_its_anchors_and_skips_the_fit(tmp_path):
    # poor anchors (BPR 1/3): only the skipped fit keeps them
    saved = [[[290., 290.]], [[300., 300.]], [[330., 330.]]]
    path = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=AnchorNet().state_dict(),
                    meta=dict(autoanchor=dict(anchors=saved))), path)
    hook = AutoAnchorHook(gen=100)
    runner = _runner(tmp_path, AnchorNet(), [hook], load_from=str(path))
    runner.train()  # loads the checkpoint, then before_train must not re-fit
    assert runner.model.head.anchors.tolist() == saved


def test_checkpoint_without_its_meta_changes_nothing(tmp_path):
    hook = AutoAnchorHook()
    runner = _runner(tmp_path, AnchorNet(), [hook])
    hook.after_load_checkpoint(runner, dict(state_dict={}, meta=dict(anchors=[[1, 2]])))
    assert runner.model.head.anchors.view(3, 2).tolist() == [[300, 300], [310, 310],
                                                             [320, 320]]
    assert not hook._restored


def test_bad_arguments():
    with pytest.raises(ValueError, match='recall in'):
        AutoAnchorHook(bpr_threshold=1.5)
    with pytest.raises(ValueError, match='side-ratio'):
        AutoAnchorHook(thr=0.5)
