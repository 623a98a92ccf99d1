"""CloseMosaicHook swaps the training pipeline once, for the last epochs."""
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmpose.registry import HOOKS as MMPOSE_HOOKS

from turtle_plugin.engine.hooks.close_mosaic_hook import CloseMosaicHook

from conftest import REPO

TIGER_SAMPLE = REPO / 'data' / 'tiger_sample'
TIGER_META = str(REPO / 'configs' / '_base_' / 'datasets' / 'tiger.py')

MOSAIC_PIPELINE = [dict(type='LoadImage'),
                   dict(type='KptMosaic', img_scale=(64, 64),
                        pre_transform=[dict(type='LoadImage')])]
PLAIN_PIPELINE = [dict(type='LoadImage'), dict(type='KptLetterResize', scale=(64, 64))]


def fake_runner(epoch, max_epochs=10):
    loader = dict(batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='pseudo_collate'),
                  dataset=dict(type='YOLOKptDataset', data_root=str(TIGER_SAMPLE),
                               data_yaml='tiger.yaml', metainfo=dict(from_file=TIGER_META),
                               use_cache=False, pipeline=MOSAIC_PIPELINE))
    return SimpleNamespace(epoch=epoch, max_epochs=max_epochs, seed=0,
                           cfg=Config(dict(train_dataloader=loader)),
                           train_loop=SimpleNamespace(dataloader='original'),
                           logger=MMLogger.get_current_instance())


def test_switches_at_the_right_epoch_only_once():
    init_default_scope('mmpose')
    hook = MMPOSE_HOOKS.build(dict(type='CloseMosaicHook', num_last_epochs=3,
                                   new_train_pipeline=PLAIN_PIPELINE))
    assert isinstance(hook, CloseMosaicHook)
    runner = fake_runner(epoch=6)
    hook.before_train_epoch(runner)
    assert runner.train_loop.dataloader == 'original'
    runner.epoch = 7  # epochs 7, 8, 9 are the last three
    hook.before_train_epoch(runner)
    loader = runner.train_loop.dataloader
    transforms = [type(t).__name__ for t in loader.dataset.pipeline.transforms]
    assert transforms == ['LoadImage', 'KptLetterResize']
    assert next(iter(loader))['img'][0].shape == (64, 64, 3)
    runner.epoch = 8
    runner.train_loop.dataloader = 'kept'
    hook.before_train_epoch(runner)
    assert runner.train_loop.dataloader == 'kept'


def test_resume_after_the_switch_point_switches_and_pipeline_is_required():
    init_default_scope('mmpose')
    runner = fake_runner(epoch=9)
    CloseMosaicHook(PLAIN_PIPELINE, num_last_epochs=3).before_train_epoch(runner)
    assert runner.train_loop.dataloader != 'original'
    with pytest.raises(ValueError, match='needs new_train_pipeline'):
        CloseMosaicHook([], num_last_epochs=3)


@pytest.mark.parametrize('max_epochs, ratio, first_plain', [
    (100, 0.5, 50), (90, 0.5, 45), (9, 0.5, 4), (10, 0.25, 7), (10, 1.0, 0), (10, 0.0, None)])
def test_last_ratio_closes_at_that_part_of_any_schedule(max_epochs, ratio, first_plain):
    """``last_ratio``: the last ``ratio * max_epochs`` epochs rounded half up (9 * 0.5 = 4.5 -> 5
    epochs: 4-8; 10 * 0.25 = 2.5 -> 3: 7-9), read from the runner, so a shorter run closes
    at the same point of its schedule; ratio 0 never switches."""
    init_default_scope('mmpose')
    hook = CloseMosaicHook(PLAIN_PIPELINE, num_last_epochs=None, last_ratio=ratio)
    runner = fake_runner(epoch=0, max_epochs=max_epochs)
    switched_at = None
    for epoch in range(max_epochs):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        if switched_at is None and runner.train_loop.dataloader != 'original':
            switched_at = epoch
    assert switched_at == first_plain


def test_count_or_ratio_not_both():
    with pytest.raises(ValueError, match='one of num_last_epochs and last_ratio'):
        CloseMosaicHook(PLAIN_PIPELINE, last_ratio=0.5)  # num_last_epochs keeps its default 15
    with pytest.raises(ValueError, match='one of num_last_epochs and last_ratio'):
        CloseMosaicHook(PLAIN_PIPELINE, num_last_epochs=None)
    with pytest.raises(ValueError, match=r'last_ratio must be in \[0, 1\]'):
        CloseMosaicHook(PLAIN_PIPELINE, num_last_epochs=None, last_ratio=1.5)
