"""`import turtle_plugin` registers every module into the MMDetection and MMPose registries,
and each registered name builds from a config dict in its scope."""
from pathlib import Path

import mmdet.registry
import mmpose.registry
import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.visualization import Visualizer

import turtle_plugin  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
TIGER = dict(data_root=str(REPO / 'data' / 'tiger_sample'), data_yaml='tiger.yaml',
             metainfo=dict(from_file=str(REPO / 'configs/_base_/datasets/tiger.py')))
HEAD_MODULE = dict(type='YOLOv7HeadModule', num_classes=1, in_channels=[8, 16, 32])

# registry kind -> name -> the smallest config that builds it
MODELS = {
    'ELANBlock': dict(in_channels=8, out_channels=16, mid_channels=4, block_channels=4),
    'MaxPoolAndStrideConvBlock': dict(in_channels=8, out_channels=8),
    'RepConv': dict(in_channels=8, out_channels=8),
    'SyncFreeExpMomentumEMA': dict(model=torch.nn.Linear(2, 2)),
    'SPPCSPCBlock': dict(in_channels=16, out_channels=8),
    'SPPCSPCTinyBlock': dict(in_channels=16, out_channels=8),
    'TransformerEncoderBlock': dict(channels=16, num_heads=2),
    'KptScaledL1Loss': dict(),
    'YOLOBCEWithLogitsLoss': dict(),
    'YOLOCIoULoss': dict(),
    'YOLOFocalLoss': dict(),
    'YOLOPoseOKSLoss': dict(),
    'YOLOv7Backbone': dict(arch='tiny'),
    'YOLOv7PAFPN': dict(arch='tiny'),
    'YOLOv7HeadModule': dict(num_classes=1, in_channels=[8, 16, 32], num_keypoints=6),
}
SCOPED_MODELS = {
    'mmdet': {'YOLOv7Head': dict(head_module=HEAD_MODULE),
              'YOLOv7Detector': dict(
        backbone=dict(type='YOLOv7Backbone', arch='tiny'),
        neck=dict(type='YOLOv7PAFPN', arch='tiny'),
        bbox_head=dict(type='YOLOv7Head',
                       head_module=dict(HEAD_MODULE, in_channels=[128, 256, 512])))},
    'mmpose': {'YOLOv7KptHead': dict(head_module=dict(HEAD_MODULE, num_keypoints=6),
                                     kpt_sigmas=[0.05] * 6),
               'YOLOv7PoseEstimator': dict(
                   backbone=dict(type='YOLOv7Backbone', arch='tiny'),
                   neck=dict(type='YOLOv7PAFPN', arch='tiny'),
                   head=dict(type='YOLOv7KptHead', kpt_sigmas=[0.05] * 6,
                             head_module=dict(HEAD_MODULE, in_channels=[128, 256, 512],
                                              num_keypoints=6)))},
}
TRANSFORMS = {
    'KptFilterAnnotations': dict(),
    'KptHSVRandomAug': dict(),
    'KptLetterResize': dict(scale=(64, 64)),
    'KptLoadImage': dict(),
    'KptMixUp': dict(pre_transform=[dict(type='LoadImageFromFile')]),  # mmcv's, in both scopes
    'KptMosaic': dict(img_scale=(64, 64)),
    'KptMosaic9': dict(img_scale=(64, 64)),
    'KptRandomAffine': dict(),
    'KptRandomFlip': dict(prob=0.5),
    'KptToDetAnnotations': dict(),
}
DATASETS = {
    'YOLOKptDataset': dict(TIGER, split='val'),
    'YOLODetDataset': dict(TIGER, split='val'),
}
TASK_UTILS = {'YOLOv5Assigner': dict(), 'YOLOv7OTAAssigner': dict()}
METRICS = {'mmdet': {'BoxPRMetric': dict()}, 'mmpose': {'KptBoxCocoMetric': dict()}}
HOOKS = {
    'AutoAnchorHook': dict(),
    'ChannelsLastHook': dict(),
    'CompileModelHook': dict(),
    'DeferredRuntimeInfoHook': dict(),
    'DivergenceCheckHook': dict(),
    'ProgressBarHook': dict(),
    'CloseMosaicHook': dict(new_train_pipeline=[dict(type='LoadImageFromFile')]),
    'EpochSeedHook': dict(),
    'KptSigmaWarmupHook': dict(),
    'YOLOv7ParamSchedulerHook': dict(),
}
# MMPose's visualization hook, drawing only confident instances (mmpose scope only)
SCOPED_HOOKS = {'mmdet': {}, 'mmpose': {'KptVisualizationHook': dict()}}
OPTIM_WRAPPER_CONSTRUCTORS = {
    'YOLOv7OptimWrapperConstructor': dict(
        optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=0.01))),
}


def expected(scope):
    return {
        'MODELS': {**MODELS, **SCOPED_MODELS[scope]},
        'TRANSFORMS': TRANSFORMS,
        'DATASETS': DATASETS,
        'TASK_UTILS': TASK_UTILS,
        'METRICS': METRICS[scope],
        'HOOKS': {**HOOKS, **SCOPED_HOOKS[scope]},
        'OPTIM_WRAPPER_CONSTRUCTORS': OPTIM_WRAPPER_CONSTRUCTORS,
    }


SCOPES = {'mmdet': mmdet.registry, 'mmpose': mmpose.registry}


def _plugin_names(registry):
    return {name for name, cls in registry.module_dict.items()
            if cls.__module__.startswith('turtle_plugin')}


@pytest.mark.parametrize('scope', sorted(SCOPES))
@pytest.mark.parametrize('kind', sorted(expected('mmdet')))
def test_registered_names_are_exactly_the_table(scope, kind):
    registry = getattr(SCOPES[scope], kind)
    assert _plugin_names(registry) == set(expected(scope)[kind])


CASES = [(scope, kind, name) for scope in sorted(SCOPES) for kind, table in
         sorted(expected(scope).items()) for name in sorted(table)]


@pytest.fixture
def _current_visualizer():
    """Visualization hooks take the current Visualizer when they are built."""
    saved = Visualizer._instance_dict.copy()
    Visualizer.get_instance('test_registry')
    yield
    Visualizer._instance_dict.clear()
    Visualizer._instance_dict.update(saved)


@pytest.mark.usefixtures('_current_visualizer')
@pytest.mark.parametrize('scope, kind, name', CASES)
def test_each_registered_name_builds_from_a_config_dict(scope, kind, name):
    registry = getattr(SCOPES[scope], kind)
    args = dict(expected(scope)[kind][name])
    with DefaultScope.overwrite_default_scope(scope):
        obj = registry.build(dict(type=name, **args))
    assert type(obj) is registry.get(name)
    assert type(obj).__module__.startswith('turtle_plugin')
