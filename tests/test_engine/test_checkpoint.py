"""Save -> resume round trip of MMEngine checkpoints on torch>=2.6 (weights_only=True loading)."""
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import HOOKS, MODELS
from mmengine.runner import Runner
from torch.utils.data import Dataset

import turtle_plugin  # noqa: F401  (registers the checkpoint allow-list)
from turtle_plugin.engine import mmengine_checkpoint_types


class _PointDataset(Dataset):
    metainfo = dict(dataset_name='points')

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        x = torch.tensor([float(idx), 1.0])
        return dict(inputs=x, target=x.sum().reshape(1) * 0.5)


@MODELS.register_module(force=True)
class _CkptToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.bn = nn.BatchNorm1d(1)

    def forward(self, inputs, target, mode='tensor'):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        target = torch.stack(target) if isinstance(target, list) else target
        out = self.bn(self.linear(inputs))
        if mode == 'loss':
            return dict(loss=((out - target)**2).mean())
        return out


class _SimulatedCrash(RuntimeError):
    pass


@HOOKS.register_module(force=True)
class _CrashAfterEpoch(Hook):
    """Kills the run after ``epoch`` epochs, once that epoch's checkpoint is written."""
    priority = 'LOWEST'

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        # runner.epoch counts finished epochs only after this hook
        if runner.epoch + 1 == self.epoch:
            raise _SimulatedCrash(f'killed after epoch {self.epoch}')


def _runner(work_dir, max_epochs, resume=False, crash_after=None):
    return Runner(
        model=dict(type='_CkptToyModel'),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_PointDataset(), sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'), batch_size=4, num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[2], gamma=0.1, by_epoch=True),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0),
        custom_hooks=[] if crash_after is None else [dict(type='_CrashAfterEpoch', epoch=crash_after)],
        resume=resume,
        default_scope='mmengine',
        experiment_name=f'ckpt_{max_epochs}_{int(resume)}')


def test_checkpoint_loads_with_weights_only(tmp_path):
    runner = _runner(tmp_path, max_epochs=1)
    runner.train()
    ckpt = torch.load(tmp_path / 'epoch_1.pth', map_location='cpu', weights_only=True)
    assert ckpt['meta']['epoch'] == 1
    assert 'message_hub' in ckpt and 'optimizer' in ckpt and 'param_schedulers' in ckpt


def test_dataset_meta_without_skeleton_loads_with_weights_only(tmp_path):
    """A keypoint dataset without skeleton links (any dataset a converter or the data yaml
    describes) gives MMPose an empty ``skeleton_link_colors`` array, kept in every checkpoint's
    ``meta``; torch.save writes its empty buffer as ``bytes()``, which must load."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo

    from turtle_plugin.datasets import default_pose_metainfo
    meta = parse_pose_metainfo(default_pose_metainfo(3))
    assert meta['skeleton_link_colors'].size == 0
    torch.save(dict(meta=dict(dataset_meta=meta)), tmp_path / 'ckpt.pth')
    loaded = torch.load(tmp_path / 'ckpt.pth', map_location='cpu', weights_only=True)
    got = loaded['meta']['dataset_meta']
    assert got['skeleton_link_colors'].shape == (0,) and got['num_keypoints'] == 3
    np.testing.assert_array_equal(got['sigmas'], meta['sigmas'])


def test_resume_round_trip_matches_uninterrupted_run(tmp_path):
    straight = _runner(tmp_path / 'straight', max_epochs=3)
    straight.train()

    killed = _runner(tmp_path / 'resumed', max_epochs=3, crash_after=2)
    with pytest.raises(_SimulatedCrash):
        killed.train()
    assert (tmp_path / 'resumed' / 'epoch_2.pth').exists()
    assert not (tmp_path / 'resumed' / 'epoch_3.pth').exists()
    resumed = _runner(tmp_path / 'resumed', max_epochs=3, resume=True)
    resumed.train()

    assert resumed.epoch == straight.epoch == 3 and resumed.iter == straight.iter == 6
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, msg=name)
    # The LR schedule resumed too: after the milestone at epoch 2 the lr is 0.001.
    assert resumed.optim_wrapper.get_lr()['lr'] == pytest.approx([0.001])


class _Evil:

    def __reduce__(self):
        return (print, ('arbitrary code ran',))


def test_arbitrary_pickles_are_still_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        torch.save({'state_dict': {}, 'payload': _Evil()}, f, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_allow_list_is_small_and_explicit():
    types = mmengine_checkpoint_types()
    names = {getattr(t, '__name__', str(t)) for t in types}
    assert {'HistoryBuffer', 'ndarray', 'dtype', '_reconstruct', 'scalar'} <= names
    assert 'Config' not in names and 'ConfigDict' not in names
    assert getattr not in types  # only a restricted stand-in is bound to builtins.getattr


def test_getattr_stand_in_resolves_only_statistics_methods():
    from mmengine.logging import HistoryBuffer

    from turtle_plugin.engine.checkpoint import history_buffer_getattr
    assert history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='__init__'):
        history_buffer_getattr(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_getattr(torch.nn.Module, 'mean')


class _Sneaky:

    def __reduce__(self):
        return (getattr, (np.ndarray, 'tofile'))


def test_getattr_payload_on_other_types_is_refused(tmp_path):
    path = tmp_path / 'sneaky.pth'
    torch.save({'x': _Sneaky()}, path)
    with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer'):
        torch.load(path, weights_only=True)
