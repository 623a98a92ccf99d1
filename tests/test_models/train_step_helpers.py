"""The training step of a config on a real batch read from ``tests/data``: the four COCO
frames of MMPose's test data (14 people, 17 keypoints), letterboxed to 256 x 256, as the
samples a keypoint or detection config's data preprocessor receives."""
import copy
from pathlib import Path
from typing import Callable, Dict, Tuple

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from turtle_plugin.datasets.metainfo import default_pose_metainfo

REPO = Path(__file__).resolve().parents[2]
COCO = REPO / 'tests' / 'data' / 'mmpose_testdata' / 'coco'
IMG_SIZE = 256


def real_batch(num_keypoints: int, task: str) -> dict:
    """The COCO test frames as a data-preprocessor batch: ``PoseDataSample``s with
    ``gt_instance_labels`` (``task='kpt'``, the first ``num_keypoints`` keypoints) or
    ``DetDataSample``s with ``gt_instances`` (``task='det'``)."""
    from mmpose.registry import DATASETS
    pipeline = [dict(type='LoadImage'), dict(type='KptLetterResize', scale=(IMG_SIZE, IMG_SIZE)),
                dict(type='GenerateTarget',
                     encoder=dict(type='YOLOXPoseAnnotationProcessor',
                                  input_size=(IMG_SIZE, IMG_SIZE))),
                dict(type='PackPoseInputs')]
    with DefaultScope.overwrite_default_scope('mmpose'):
        dataset = DATASETS.build(dict(
            type='CocoDataset', data_root=str(COCO), ann_file='test_coco.json',
            data_prefix=dict(img=''), data_mode='bottomup',
            metainfo=default_pose_metainfo(17, dataset_name='coco_test'), pipeline=pipeline))
        items = [dataset[i] for i in range(len(dataset))]
    samples = []
    for item in items:
        sample, labels = item['data_samples'], item['data_samples'].gt_instance_labels
        labels.keypoints = labels.keypoints[:, :num_keypoints]
        labels.keypoints_visible = labels.keypoints_visible[:, :num_keypoints]
        samples.append(sample if task == 'kpt' else _det_sample(sample))
    return dict(inputs=[item['inputs'] for item in items], data_samples=samples)


def _det_sample(pose_sample):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    labels = pose_sample.gt_instance_labels
    sample = DetDataSample(metainfo=pose_sample.metainfo)
    sample.gt_instances = InstanceData(bboxes=labels.bboxes.float(), labels=labels.labels.long())
    return sample


def build_step(config: str, seed: int = 0, device: str = 'cpu'
               ) -> Tuple[torch.nn.Module, object, dict, Callable]:
    """A config's model (seeded init, train mode, on ``device``), its ``optim_wrapper``, the
    preprocessed real batch and ``step()``: what MMEngine's ``train_step`` does after the data
    preprocessor (``optim_context`` -> ``loss`` -> ``parse_losses`` -> ``update_params``),
    returning the log variables."""
    cfg = Config.fromfile(str(REPO / 'configs' / config))
    scope = cfg.default_scope
    task = 'kpt' if scope == 'mmpose' else 'det'
    head = cfg.model.head if task == 'kpt' else cfg.model.bbox_head
    head.img_size = IMG_SIZE
    with DefaultScope.overwrite_default_scope(scope):
        from mmengine.registry import MODELS
        torch.manual_seed(seed)
        model = MODELS.build(cfg.model).to(device)
        model.train()
        optim_cfg = copy.deepcopy(cfg.optim_wrapper)
        optim_cfg.paramwise_cfg['batch_size_per_gpu'] = 4
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    num_keypoints = head.head_module.get('num_keypoints', 0) if task == 'kpt' else 0
    data = model.data_preprocessor(real_batch(num_keypoints, task), training=True)

    def step() -> Dict[str, torch.Tensor]:
        with optim_wrapper.optim_context(model):
            losses = model(**data, mode='loss')
        parsed, log_vars = model.parse_losses(losses)
        optim_wrapper.update_params(parsed)
        return log_vars

    return model, optim_wrapper, data, step


def step_values(config: str) -> Dict[str, torch.Tensor]:
    """What a training step computes on the real batch, before the optimizer uses it: each
    loss, and per parameter (in ``named_parameters`` order) the sum and the absolute sum of its
    gradient."""
    model, _, data, _ = build_step(config)
    losses = model(**data, mode='loss')
    parsed, log_vars = model.parse_losses(losses)
    parsed.backward()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    values = {name: value.detach() for name, value in log_vars.items()}
    values['grad_sum'] = torch.stack([g.sum() for g in grads])
    values['grad_abs_sum'] = torch.stack([g.abs().sum() for g in grads])
    return values


REFERENCE = REPO / 'tests' / 'data' / 'train_step_reference.pt'
REFERENCE_CONFIGS = ('tiger_kpt_tiny.py', 'turtle_det_tiny.py')

if __name__ == '__main__':  # re-record: python tests/test_models/train_step_helpers.py
    import turtle_plugin  # noqa: F401
    torch.set_num_threads(1)
    torch.save({name: step_values(name) for name in REFERENCE_CONFIGS}, REFERENCE)
    print(f'written {REFERENCE}')
