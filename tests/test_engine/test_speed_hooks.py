"""ChannelsLastHook, CompileModelHook and the matching tools/train.py switches."""
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import EMAHook
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import DefaultScope
from mmengine.runner import get_priority

import turtle_plugin  # noqa: F401
from turtle_plugin.engine.hooks import ChannelsLastHook, CompileModelHook

from conftest import load_tool

REPO = Path(__file__).resolve().parents[2]


def _pose_model():
    from mmengine.config import Config
    from mmpose.registry import MODELS
    cfg = Config.fromfile(str(REPO / 'configs' / 'tiger_kpt_tiny.py'))
    with DefaultScope.overwrite_default_scope('mmpose'):
        torch.manual_seed(0)
        return MODELS.build(cfg.model).eval()


def _det_model_without_neck():
    from mmdet.registry import MODELS
    cfg = dict(
        type='YOLOv7Detector', backbone=dict(type='YOLOv7Backbone', arch='tiny'), neck=None,
        bbox_head=dict(
            type='YOLOv7Head',
            head_module=dict(type='YOLOv7HeadModule', num_classes=1, in_channels=[128, 256, 512],
                             featmap_strides=[8, 16, 32])),
        data_preprocessor=dict(type='mmdet.DetDataPreprocessor'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg).eval()


def test_channels_last_hook_converts_weights_and_keeps_outputs():
    model = _pose_model()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = model._forward(x)
    ChannelsLastHook().before_run(SimpleNamespace(model=model))
    four_d = [p for p in model.parameters() if p.dim() == 4]
    assert len(four_d) > 50
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in four_d)
    assert not all(p.is_contiguous() for p in four_d)  # 1x1 convs aside, the layout changed
    with torch.no_grad():
        feats = model.extract_feat(x)  # contiguous input: the first conv's weight decides
        after = model._forward(x)
    assert all(f.is_contiguous(memory_format=torch.channels_last) for f in feats)
    for a, b in zip(torch.utils._pytree.tree_leaves(before),
                    torch.utils._pytree.tree_leaves(after)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_speed_hooks_run_before_the_ema_copy():
    ema = EMAHook(priority=49)
    for hook in (ChannelsLastHook(), CompileModelHook()):
        assert get_priority(hook.priority) < get_priority(ema.priority)


def test_compile_model_hook_compiles_named_modules():
    model = _pose_model()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model._forward(x)
    hook = CompileModelHook(compile_kwargs=dict(backend='eager'))
    hook.before_train(SimpleNamespace(model=model))
    hook.before_test(SimpleNamespace(model=model))  # idempotent
    # the keypoint model has `head`, not `bbox_head`: that default is skipped
    assert hook.compiled == ['backbone', 'neck', 'head.head_module']
    for module in (model.backbone, model.neck, model.head.head_module):
        assert module._compiled_call_impl is not None
    assert model.head._compiled_call_impl is None  # the loss / decoding stay eager
    with torch.no_grad():
        after = model._forward(x)
    for a, b in zip(torch.utils._pytree.tree_leaves(before),
                    torch.utils._pytree.tree_leaves(after)):
        torch.testing.assert_close(a, b)


def test_compile_model_hook_skips_missing_neck_and_names_bad_paths():
    model = _det_model_without_neck()
    hook = CompileModelHook(compile_kwargs=dict(backend='eager'))
    hook.before_train(SimpleNamespace(model=model))
    assert hook.compiled == ['backbone', 'bbox_head.head_module']
    with pytest.raises(ValueError, match="no module 'backbone.stem2'"):
        CompileModelHook(modules=['backbone.stem2']).before_train(SimpleNamespace(model=model))


def test_hooks_unwrap_model_wrappers():
    model = _det_model_without_neck()
    wrapper = MMDistributedDataParallel.__new__(MMDistributedDataParallel)
    torch.nn.Module.__init__(wrapper)
    wrapper.module = model
    ChannelsLastHook().before_run(SimpleNamespace(model=wrapper))
    assert model.backbone.stem[0].conv.weight.is_contiguous(memory_format=torch.channels_last)


def _config(*flags):
    tool = load_tool('train.py')
    return tool.build_config(tool.parse_args([str(REPO / 'configs' / 'tiger_kpt_tiny.py'), *flags]))


@pytest.mark.parametrize('amp', ['float16', 'bfloat16'])
def test_train_tool_amp_switch(amp):
    cfg = _config('--amp', amp)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == amp
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    # the recipe itself is untouched
    assert cfg.optim_wrapper.constructor == 'YOLOv7OptimWrapperConstructor'
    assert cfg.optim_wrapper.optimizer.lr == 0.01


def test_train_tool_speed_switches_add_hooks_once():
    assert _config('--amp').optim_wrapper.dtype == 'float16'
    plain = _config()
    cfg = _config('--channels-last', '--compile')
    added = [h.type for h in cfg.custom_hooks[len(plain.custom_hooks):]]
    assert added == ['ChannelsLastHook', 'CompileModelHook']
    assert plain.optim_wrapper.type == 'OptimWrapper'
    assert not any(h.type in added for h in plain.custom_hooks)
