"""Every config builds the model the issue specifies and trains + evaluates on real data.

Parameter counts are those of the original YOLOv7 training configs with 1 class
(l 37,196,556, tiny 6,014,988, x 70,815,092) plus, for keypoint models, one 1x1 conv per level
to 3 anchors x K x 2 channels: 36 * (sum(in_channels) + 3) for K = 6, 72 * (...) for K = 12.
"""
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from conftest import few_iterations

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs'
TIGER_SAMPLE = REPO / 'data' / 'tiger_sample'

DET = {'l': 37_196_556, 'tiny': 6_014_988, 'x': 70_815_092}
HEAD_IN = {'l': 256 + 512 + 1024, 'tiny': 128 + 256 + 512, 'x': 320 + 640 + 1280}
EXPECTED_PARAMS = {
    'turtle_det.py': DET['l'],
    'turtle_det_tiny.py': DET['tiny'],
    'turtle_det_x.py': DET['x'],
    'turtle_kpt.py': DET['l'] + 36 * (HEAD_IN['l'] + 3),  # 37,261,176 (the number)
    'turtle_kpt_p5.py': DET['l'] + 36 * (HEAD_IN['l'] + 3),  # the seed recipe, same model
    'turtle_kpt_tiny.py': DET['tiny'] + 36 * (HEAD_IN['tiny'] + 3),
    'turtle_kpt_x.py': DET['x'] + 36 * (HEAD_IN['x'] + 3),
    'tiger_kpt_tiny.py': DET['tiny'] + 72 * (HEAD_IN['tiny'] + 3),
    'tiger_kpt_tiny_full.py': DET['tiny'] + 72 * (HEAD_IN['tiny'] + 3),
    # your own data: turtle_kpt.py's model with the bundled tiger sample's 12 keypoints
    'examples/own_data_kpt.py': DET['l'] + 72 * (HEAD_IN['l'] + 3),
}


def _build_model(cfg):
    scope = cfg.default_scope
    with DefaultScope.overwrite_default_scope(scope):
        if scope == 'mmpose':
            from mmpose.registry import MODELS
        else:
            from mmdet.registry import MODELS
        return MODELS.build(cfg.model)


def test_every_config_is_listed():
    found = [*CONFIGS.glob('*.py'), *CONFIGS.glob('examples/*.py')]
    assert sorted(str(p.relative_to(CONFIGS)) for p in found) == sorted(EXPECTED_PARAMS)


@pytest.mark.parametrize('name', sorted(EXPECTED_PARAMS))
def test_config_builds_the_specified_model(name):
    cfg = Config.fromfile(CONFIGS / name)
    model = _build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[name]
    # the batch's copy to the GPU does not wait (pin_memory=True makes it asynchronous)
    assert model.data_preprocessor._non_blocking is True
    assert cfg.train_dataloader.pin_memory is True
    assert EXPECTED_PARAMS['turtle_kpt.py'] == 37_261_176


@pytest.fixture(scope='module')
def turtle_shaped_data(tmp_path_factory):
    """The bundled tiger frames relabelled in the turtle layout: 1 class and the first 6
    keypoints of each row (`cls cx cy w h x1 y1 ... x6 y6`), with a YOLOv7-style data yaml."""
    root = tmp_path_factory.mktemp('turtle')
    for split in ('train', 'val'):
        shutil.copytree(TIGER_SAMPLE / split / 'images', root / split / 'images')
        (root / split / 'labels').mkdir(parents=True)
        for label in (TIGER_SAMPLE / split / 'labels').glob('*.txt'):
            rows = [line.split()[:5 + 12] for line in label.read_text().splitlines() if line]
            (root / split / 'labels' / label.name).write_text(
                ''.join(' '.join(row) + '\n' for row in rows))
    (root / 'turtlekpt.yaml').write_text(
        'train: train\nval: val\nnc: 1\nnames: [turtle]\nkpt_shape: [6, 2]\n'
        'flip_idx: [0, 2, 1, 4, 3, 5]\n')
    return root


def _few_iterations(cfg, work_dir, data_root):
    """Shrink a recipe to 2 training iterations of 2 images and one evaluation on 2 images."""
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(few_iterations(train_images=4, batch_size=2, val_images=2))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if data_root is not None:
            cfg[loader].dataset.data_root = str(data_root)
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(EXPECTED_PARAMS))
def test_config_trains_and_evaluates_on_real_data(name, tmp_path, turtle_shaped_data):
    cfg = Config.fromfile(CONFIGS / name)
    # the bundled sample has tiger_kpt_tiny_full.py's layout (train/ and val/ folders) too
    data_root = {'tiger_kpt_tiny.py': None, 'tiger_kpt_tiny_full.py': TIGER_SAMPLE,
                 'examples/own_data_kpt.py': None}.get(name, turtle_shaped_data)
    cfg = _few_iterations(cfg, tmp_path, data_root)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    scalars = runner.message_hub.log_scalars
    assert math.isfinite(scalars['train/loss'].current())
    metrics = runner.val_loop.run()
    key = 'coco/bbox_mAP' if cfg.default_scope == 'mmdet' else 'coco/AP'
    assert key in metrics and 0.0 <= metrics[key] <= 1.0
    assert (tmp_path / 'epoch_1.pth').exists()


@pytest.mark.slow
def test_training_reduces_the_loss_on_a_fixed_tiger_batch():
    """A fixed batch of 4 real tiger frames (K = 12): 30 SGD steps on the tiny keypoint model
    bring every loss term below where it started.

    The YOLOv5 assigner keeps the positives fixed from step to step. (With OTA the positives
    follow the predictions, and since YOLOv7 sums per-level means, the loss jumps whenever a
    level gains or loses all its positives: a noisy curve for a 30-step test.)"""
    from mmpose.registry import DATASETS
    cfg = Config.fromfile(CONFIGS / 'tiger_kpt_tiny.py')
    cfg.model.head.assigner = dict(type='YOLOv5Assigner')
    codec = dict(type='YOLOXPoseAnnotationProcessor', input_size=(256, 256))
    pipeline = [p for p in cfg.val_pipeline if p.type != 'PackPoseInputs'] + [
        dict(type='GenerateTarget', encoder=codec), dict(type='PackPoseInputs')]
    with DefaultScope.overwrite_default_scope('mmpose'):
        dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, pipeline=pipeline,
                                      indices=4))
        batch = dict(inputs=[], data_samples=[])
        for i in range(4):
            sample = dataset[i]
            batch['inputs'].append(sample['inputs'])
            batch['data_samples'].append(sample['data_samples'])
        assert batch['data_samples'][0].gt_instance_labels.keypoints.shape[1:] == (12, 2)
        torch.manual_seed(0)
        model = _build_model(cfg)
        model.init_weights()
        model.train()
        data = model.data_preprocessor(batch, training=True)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        history = []
        for _ in range(30):
            loss_dict = model(**data, mode='loss')
            loss = sum(v for k, v in loss_dict.items() if k.startswith('loss'))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append({k: v.item() for k, v in loss_dict.items()})
    total = [sum(h.values()) for h in history]
    assert np.isfinite(total).all()
    assert np.mean(total[-3:]) < 0.75 * np.mean(total[:3]), total
    for key in ('loss_box', 'loss_obj', 'loss_kpt'):
        first = np.mean([h[key] for h in history[:3]])
        last = np.mean([h[key] for h in history[-3:]])
        assert last < 0.9 * first, (key, first, last)


def _recipe(cfg):
    """The pieces in which the keypoint recipes differ."""
    pipe = cfg.train_dataloader.dataset.pipeline
    affine = next(s for s in pipe if s['type'] == 'KptRandomAffine')
    stage2 = cfg.default_hooks.close_mosaic
    affine2 = next(s for s in stage2['new_train_pipeline'] if s['type'] == 'KptRandomAffine')
    mix = [s['prob'] for s in pipe if s['type'] == 'KptMixUp']
    choice = [s['prob'] for s in pipe if s['type'] == 'RandomChoice']
    resize = next(s for s in cfg.val_dataloader.dataset.pipeline
                  if s['type'] == 'KptLetterResize')
    return dict(assigner=cfg.model.head.assigner['type'],
                kpt_prior=cfg.model.head.head_module.get('kpt_prior', 'zero'),
                aux=(cfg.model.head.get('loss_kpt_aux') or {}).get('type'),
                sigma_warmup=cfg.default_hooks.kpt_sigma_warmup.warmup_ratio,
                min_warmup_iters=cfg.default_hooks.param_scheduler.min_warmup_iters,
                affine=(affine['translate'], affine['scale']),
                affine2=(affine2['translate'], affine2['scale']), mixup=mix,
                mosaic9=choice, eval_shrink=resize.get('shrink_interpolation', 'linear'),
                close=(stage2.get('num_last_epochs'), stage2.get('last_ratio')),
                dense_val=cfg.train_cfg.get('dynamic_intervals'))


@pytest.mark.parametrize('name', ['turtle_kpt.py', 'turtle_kpt_tiny.py', 'turtle_kpt_x.py',
                                  'tiger_kpt_tiny.py', 'tiger_kpt_tiny_full.py',
                                  'examples/own_data_kpt.py'])
def test_keypoint_configs_train_the_default_recipe(name):
    """YOLO-Pose's hyp.pose + YOLOv5 assignment + the L1 keypoint term + area shrinking + the
    loss's sigmas warmed up over half the epochs + the mosaic closed for the second half (and
    validation every val_interval epochs to the end) + keypoints starting at the diagonal
    neighbour's centre (keypoint-conv bias 0) + a 3-epoch lr warm-up without YOLOv7's
    1000-iteration minimum."""
    assert _recipe(Config.fromfile(CONFIGS / name)) == dict(
        assigner='YOLOv5Assigner', kpt_prior='zero', aux='KptScaledL1Loss', affine=(0.1, 0.5),
        affine2=(0.1, 0.5), mixup=[], mosaic9=[], eval_shrink='area', sigma_warmup=0.5,
        min_warmup_iters=0, close=(None, 0.5), dense_val=None)


def test_p5_config_is_the_seed_recipe():
    """hyp.scratch.p5 (4/9-image mosaic 0.8/0.2, translate 0.2, scale 0.9, MixUp 0.15; closed
    for the schedule's last 15 of 300 epochs, validated every epoch from there), OTA, OKS alone,
    bilinear shrinking, keypoints starting at the diagonal neighbour's centre (bias 0), YOLOv7's
    warm-up of at least 1000 iterations; everything else as turtle_kpt.py."""
    p5 = Config.fromfile(CONFIGS / 'turtle_kpt_p5.py')
    assert _recipe(p5) == dict(
        assigner='YOLOv7OTAAssigner', kpt_prior='zero', aux=None, affine=(0.2, 0.9),
        affine2=(0.2, 0.9), mixup=[0.15], mosaic9=[[0.8, 0.2]], eval_shrink='linear',
        sigma_warmup=0, min_warmup_iters=1000, close=(15, None), dense_val=[(285, 1)])
    default = Config.fromfile(CONFIGS / 'turtle_kpt.py')
    for cfg in (p5, default):  # compared by _recipe above
        cfg.train_cfg.pop('dynamic_intervals')
    for key in ('optim_wrapper', 'train_cfg', 'custom_hooks', 'val_evaluator'):
        assert p5[key] == default[key], key
    # every hook the same but for the stage-2 pipeline and its epochs (compared by _recipe)
    for cfg in (p5, default):
        for key in ('new_train_pipeline', 'num_last_epochs', 'last_ratio'):
            cfg.default_hooks.close_mosaic.pop(key)
        cfg.default_hooks.kpt_sigma_warmup.pop('warmup_ratio')
        cfg.default_hooks.param_scheduler.pop('min_warmup_iters')
    assert p5.default_hooks == default.default_hooks
    for cfg in (p5, default):
        cfg.model.head.head_module.pop('kpt_prior')
    assert {k: v for k, v in p5.model.head.items() if k not in ('assigner', 'loss_kpt_aux')} \
        == {k: v for k, v in default.model.head.items() if k not in ('assigner', 'loss_kpt_aux')}


# ----------------------------------------------------------------------------- your own data
OWN_DATA = CONFIGS / 'examples' / 'own_data_kpt.py'
OWN_DATA_SETTINGS = {'data_root', 'data_yaml', 'metainfo', 'num_keypoints'}


def _data_free(cfg) -> dict:
    """A keypoint config without what says where the data is and how many keypoints it has."""
    cfg = cfg.to_dict()
    for key in OWN_DATA_SETTINGS:
        cfg.pop(key)
    cfg['model']['head'].pop('kpt_sigmas')
    cfg['model']['head']['head_module'].pop('num_keypoints')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for key in ('data_root', 'data_yaml', 'metainfo'):
            cfg[loader]['dataset'].pop(key)
    return cfg


def test_own_data_is_one_short_config():
    """The example sets the data root, the data yaml, the metainfo and the number of keypoints,
    restates them where turtle_kpt.py used them, and takes every other value from it."""
    import ast
    tree = ast.parse(OWN_DATA.read_text())
    assigned = [node.targets[0].id for node in tree.body if isinstance(node, ast.Assign)]
    assert set(assigned) == {'_base_', *OWN_DATA_SETTINGS, 'model', 'train_dataloader',
                             'val_dataloader', 'test_dataloader'}
    code = [line for line in OWN_DATA.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith('#')]
    assert len(code) <= 10, code
    own = Config.fromfile(OWN_DATA)
    assert _data_free(own) == _data_free(Config.fromfile(CONFIGS / 'turtle_kpt.py'))


def test_own_data_metainfo_is_derived_once_for_everything(tmp_path, monkeypatch):
    """No metainfo file: the data yaml's keypoints, named kpt_0 .., drive the training
    transforms (flip indices), the head's OKS sigmas and the evaluation's, from one reading."""
    monkeypatch.chdir(REPO)  # data_root is relative to the repository, as the README runs it
    cfg = Config.fromfile(OWN_DATA)
    cfg.work_dir = str(tmp_path)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(num_workers=0, persistent_workers=False)
    with pytest.warns(UserWarning, match='tiger.yaml names no keypoints: they are kpt_0 .. '
                      'kpt_11'):
        runner = Runner.from_cfg(cfg)
        meta = runner.train_dataloader.dataset.metainfo
        evaluator = runner.build_val_loop(runner._val_loop).evaluator
    assert [meta['keypoint_id2name'][k] for k in range(12)] == [f'kpt_{k}' for k in range(12)]
    assert meta['flip_indices'] == list(range(12)) and meta['classes'] == ('tiger', )
    np.testing.assert_allclose(meta['sigmas'], np.full(12, 1 / 12), rtol=1e-6)
    sample = runner.train_dataloader.dataset.get_data_info(0)
    assert sample['flip_indices'] == meta['flip_indices']  # what the flip transform reads
    torch.testing.assert_close(runner.model.head.kpt_branch.kpt_sigmas,
                               torch.as_tensor(meta['sigmas'], dtype=torch.float32))
    np.testing.assert_array_equal(evaluator.metrics[0].dataset_meta['sigmas'], meta['sigmas'])
    assert sum(p.numel() for p in runner.model.parameters()) == \
        EXPECTED_PARAMS['examples/own_data_kpt.py']
