"""Drawing val/test predictions with MMPose's and MMDetection's visualization hooks
(``tools/test.py --show-dir``, ``default_hooks.visualization.enable=True`` while training),
TensorBoard event files (``tools/train.py --tensorboard``) and SyncBatchNorm
(``tools/train.py --sync-bn``).

The head's decoding is replaced by fixed predictions, so every drawn pixel is known: on each
1280x720 tiger frame a confident instance (score 0.9, drawn) and a faint one (score 0.2, below
the hooks' ``score_thr`` of 0.3, not drawn). They are given in network-input pixels of the
256x256 letterbox (scale 0.2, 56 rows of padding above), so they land where they should only if
the samples' metainfo maps them back correctly.
"""
import json
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmdet.visualization import DetLocalVisualizer
from mmengine.config import Config
from mmengine.structures import InstanceData
from mmengine.visualization import Visualizer
from mmpose.visualization import PoseLocalVisualizer

from turtle_plugin.apis import init_model
from turtle_plugin.models.heads import YOLOv7HeadCore

from conftest import cfg_options, few_iterations, load_tool

REPO = Path(__file__).resolve().parents[2]
KPT_CFG = str(REPO / 'configs' / 'tiger_kpt_tiny.py')
DET_CFG = str(REPO / 'configs' / 'turtle_det_tiny.py')
VAL_IMAGES = sorted((REPO / 'data' / 'tiger_sample' / 'val' / 'images').glob('*.jpg'))
HEIGHT, WIDTH = 720, 1280
# the detection config trains on turtles: point it at the bundled tiger frames (also 1 class)
TIGER_DATA = ['data_root=data/tiger_sample/', 'data_yaml=tiger.yaml',
              'metainfo.from_file=configs/_base_/datasets/tiger.py']
LOADER = ['batch_size=4', 'num_workers=0', 'persistent_workers=False']

# predictions in original-image pixels (multiples of 5: exact in the 0.2-scaled input)
CONFIDENT_BOX = (320, 180, 960, 540)
FAINT_BOX = (40, 40, 200, 680)
# tiger skeleton (configs/_base_/datasets/tiger.py): 0-1, 1-2, 2-3, 3-4, 4-5, 3-7, 7-6, 2-8,
# 8-9, 2-10, 10-11; kpt_0 -> kpt_1 is a horizontal link at y=240 that nothing else crosses
KEYPOINTS = [(400, 240), (880, 240), (880, 330), (400, 330), (400, 420), (560, 420),
             (880, 420), (720, 420), (480, 500), (560, 500), (720, 500), (800, 500)]
FAINT_KEYPOINTS = [(120, 100 + 50 * k) for k in range(12)]
# colours as the tiger metainfo gives them (RGB), in the BGR order cv2.imread returns
LINK_BGR = (255, 153, 51)  # skeleton_info color [51, 153, 255]
KPT_BGR = (0, 128, 255)  # keypoint_info color [255, 128, 0]
# the test drawings are re-encoded JPEGs (OpenCV's quality 95): untouched pixels move by up to
# ~13 grey levels on these frames, the centre row of a 2-pixel line by ~22
JPEG_TOL = 25
DRAWN = 40  # a drawn line changes its pixels by more than this (45 to 255 seen here)


test_tool = load_tool('test.py')
train_tool = load_tool('train.py')


@pytest.fixture(autouse=True)
def _fresh_visualizer():
    """A runner builds its visualizer with ``get_instance('visualizer')``, which returns the
    instance an earlier runner in this process made (with that run's backends and save_dir):
    each test starts without one and leaves the earlier ones as they were."""
    classes = (Visualizer, PoseLocalVisualizer, DetLocalVisualizer)
    saved = [cls._instance_dict.copy() for cls in classes]
    for cls in classes:
        cls._instance_dict.clear()
    yield
    for cls, instances in zip(classes, saved):
        cls._instance_dict.clear()
        cls._instance_dict.update(instances)


@pytest.fixture(autouse=True)
def _local_rank(monkeypatch):
    """The tools' parse_args set LOCAL_RANK in os.environ; undo it after each test."""
    monkeypatch.setenv('LOCAL_RANK', '0')


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _input_pixels(points):
    """Original 1280x720 pixels -> 256x256 letterbox input pixels."""
    return torch.tensor(points, dtype=torch.float32) * 0.2 + torch.tensor([0., 56.])


def _fixed_predict_by_feat(self, det_maps, kpt_maps, cfg=None):
    """Stands in for ``YOLOv7HeadCore.predict_by_feat`` (both heads' decoding): the same two
    instances on every image."""
    instances = []
    for _ in range(det_maps[0].shape[0]):
        boxes = _input_pixels([CONFIDENT_BOX[:2], CONFIDENT_BOX[2:], FAINT_BOX[:2], FAINT_BOX[2:]])
        fields = dict(bboxes=boxes.view(2, 4), scores=torch.tensor([0.9, 0.2]),
                      labels=torch.zeros(2, dtype=torch.long))
        if self.num_keypoints:
            fields['keypoints'] = torch.stack([_input_pixels(KEYPOINTS),
                                               _input_pixels(FAINT_KEYPOINTS)])
            fields['keypoint_scores'] = torch.ones(2, self.num_keypoints)
        instances.append(InstanceData(**fields))
    return instances


@pytest.fixture
def fixed_predictions(monkeypatch):
    monkeypatch.setattr(YOLOv7HeadCore, 'predict_by_feat', _fixed_predict_by_feat)


def _checkpoint(tmp_path_factory, config):
    path = tmp_path_factory.mktemp('ckpt') / 'model.pth'
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(dict(state_dict=init_model(config).state_dict()), path)
    return str(path)


@pytest.fixture(scope='module')
def kpt_checkpoint(tmp_path_factory):
    return _checkpoint(tmp_path_factory, KPT_CFG)


@pytest.fixture(scope='module')
def det_checkpoint(tmp_path_factory):
    return _checkpoint(tmp_path_factory, DET_CFG)


def _diff(drawn, raw):
    return np.abs(drawn.astype(np.int16) - raw.astype(np.int16)).max(axis=-1)


def _check_pose_drawing(drawn, raw, tol):
    """The confident instance's box, skeleton and keypoints are drawn; the faint one and the
    rest of the frame are untouched (up to ``tol`` grey levels of JPEG re-encoding)."""
    assert drawn.shape == raw.shape == (HEIGHT, WIDTH, 3)
    diff = _diff(drawn, raw)
    x1, y1, x2, y2 = CONFIDENT_BOX
    # box edges (the box is drawn over the links' ends and the keypoints)
    assert np.median(diff[y1, x1 + 100:x2 - 100]) > DRAWN and np.median(diff[y2, x1:x2]) > DRAWN
    assert np.median(diff[y1:y2, x1]) > DRAWN and np.median(diff[y1:y2, x2]) > DRAWN
    # the kpt_0 -> kpt_1 link (line_width=2 in the config) in the metainfo's link colour,
    # between the two keypoint dots
    link = drawn[240, 420:860].astype(int)
    assert np.median(np.abs(link - LINK_BGR).max(axis=-1)) <= tol
    # every keypoint dot in the metainfo's keypoint colour
    for x, y in KEYPOINTS:
        assert np.abs(drawn[y, x].astype(int) - KPT_BGR).max() <= tol, (x, y)
    # the faint instance and an empty corner: nothing drawn
    fx1, fy1, fx2, fy2 = FAINT_BOX
    assert diff[fy1:fy2, fx1].max() <= tol and diff[fy1, fx1:fx2].max() <= tol
    assert all(diff[y, x] <= tol for x, y in FAINT_KEYPOINTS)
    assert diff[600:, 1000:].max() <= tol


def test_test_show_dir_draws_every_val_image(tmp_path, kpt_checkpoint, fixed_predictions):
    metrics = test_tool.main([
        KPT_CFG, kpt_checkpoint, '--work-dir', str(tmp_path), '--show-dir', 'vis',
        '--cfg-options', *(f'test_dataloader.{o}' for o in LOADER)])
    assert 'coco/AP' in metrics
    # MMPose's hook writes work_dir/<timestamp>/vis/<stem>_<n>.<ext>, one per test image
    show_dir, = tmp_path.glob('*/vis')
    assert sorted(p.name for p in show_dir.iterdir()) == sorted(
        f'{p.stem}_0.jpg' for p in VAL_IMAGES)
    for image in VAL_IMAGES:
        drawn = cv2.imread(str(show_dir / f'{image.stem}_0.jpg'))
        _check_pose_drawing(drawn, cv2.imread(str(image)), tol=JPEG_TOL)


def test_detection_show_dir_draws_the_predictions(tmp_path, det_checkpoint, fixed_predictions):
    test_tool.main([
        DET_CFG, det_checkpoint, '--work-dir', str(tmp_path), '--show-dir', 'vis',
        '--cfg-options', *(f'test_dataloader.{o}' for o in LOADER),
        *(f'test_dataloader.dataset.{o}' for o in TIGER_DATA)])
    show_dir, = tmp_path.glob('*/vis')
    # MMDetection's hook: work_dir/<timestamp>/vis/<name>, ground truth | prediction
    assert sorted(p.name for p in show_dir.iterdir()) == sorted(p.name for p in VAL_IMAGES)
    for image in VAL_IMAGES:
        drawn = cv2.imread(str(show_dir / image.name))
        assert drawn.shape == (HEIGHT, 2 * WIDTH, 3)
        diff = _diff(drawn[:, WIDTH:], cv2.imread(str(image)))
        x1, y1, x2, y2 = CONFIDENT_BOX
        # a 3-pixel antialiased edge at alpha 0.8 (DetLocalVisualizer): look at 5-pixel bands
        assert np.median(diff[y2 - 2:y2 + 3, x1:x2].max(axis=0)) > DRAWN
        assert np.median(diff[y1:y2, x2 - 2:x2 + 3].max(axis=1)) > DRAWN
        assert np.median(diff[y1:y2, x1 - 2:x1 + 3].max(axis=1)) > DRAWN
        fx1, fy1, fx2, fy2 = FAINT_BOX
        assert diff[fy1 - 2:fy2 + 3, fx1 - 2:fx1 + 3].max() <= JPEG_TOL
        assert diff[fy2 - 2:fy2 + 3, fx1:fx2].max() <= JPEG_TOL
        assert diff[600:, 1000:].max() <= JPEG_TOL


def test_detection_show_dir_draws_the_ground_truth_in_place(tmp_path, det_checkpoint,
                                                            fixed_predictions):
    test_tool.main([
        DET_CFG, det_checkpoint, '--work-dir', str(tmp_path), '--show-dir', 'vis',
        '--cfg-options', 'test_dataloader.dataset.indices=1',
        *(f'test_dataloader.{o}' for o in LOADER),
        *(f'test_dataloader.dataset.{o}' for o in TIGER_DATA)])
    image = VAL_IMAGES[0]  # Frame_113: one tiger, YOLO box (0.48046875 0.51041667 0.625 0.60138889)
    drawn = cv2.imread(str(next(tmp_path.glob(f'*/vis/{image.name}'))))
    diff = _diff(drawn[:, :WIDTH], cv2.imread(str(image)))
    x1, x2 = round((0.48046875 - 0.625 / 2) * WIDTH), round((0.48046875 + 0.625 / 2) * WIDTH)
    y2 = round((0.5104166667 + 0.6013888889 / 2) * HEIGHT)  # (215, 1015, 584)
    assert np.median(diff[y2 - 2:y2 + 3, x1:x2].max(axis=0)) > DRAWN


def _train_argv(work_dir, *extra):
    """2 training iterations (4 frames, batch 2), then a validation of the 8 frames in batches
    of 4."""
    shrink = few_iterations(train_images=4, batch_size=2, val_images=None, val_batch_size=4)
    return [KPT_CFG, '--work-dir', str(work_dir), *extra, '--cfg-options', *cfg_options(shrink)]


def test_training_draws_validation_and_logs_to_tensorboard(tmp_path, fixed_predictions):
    pytest.importorskip('tensorboard', reason='tensorboard (requirements/tests.txt) is needed '
                        'to read the event files')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_tool.main(_train_argv(tmp_path, '--tensorboard') + [
        'default_hooks.visualization.enable=True', 'default_hooks.visualization.interval=1'])
    vis_data, = tmp_path.glob('*/vis_data')

    # validation after iteration 2, batches of 4: the first image of batch 0 and of batch 1,
    # named by step = iteration + batch index, through LocalVisBackend (PNG: exact colours)
    assert sorted(p.name for p in (vis_data / 'vis_image').iterdir()) == [
        'val_img_2.png', 'val_img_3.png']
    for name, image in (('val_img_2.png', VAL_IMAGES[0]), ('val_img_3.png', VAL_IMAGES[4])):
        drawn = cv2.imread(str(vis_data / 'vis_image' / name))
        _check_pose_drawing(drawn, cv2.imread(str(image)), tol=0)

    # TensorBoard received the same scalars as the JSON log: per iteration and per validation
    event_file, = vis_data.glob('events.out.tfevents.*')
    events = EventAccumulator(str(event_file), size_guidance={'scalars': 0, 'images': 0})
    events.Reload()
    records = [json.loads(line) for line in (vis_data / 'scalars.json').read_text().splitlines()]
    train_records = [r for r in records if 'loss' in r]
    val_record, = [r for r in records if 'coco/AP' in r]
    assert [r['step'] for r in train_records] == [1, 2] and val_record['step'] == 1
    tags = set(events.Tags()['scalars'])
    assert {'loss', 'loss_box', 'loss_obj', 'loss_kpt', 'lr', 'coco/AP', 'coco/bbox_mAP'} <= tags
    for tag, expected in (('loss', train_records), ('loss_kpt', train_records),
                          ('coco/AP', [val_record]), ('coco/bbox_mAP', [val_record])):
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert logged == [(r['step'], pytest.approx(r[tag], rel=1e-6)) for r in expected], tag
    assert [e.step for e in events.Images('val_img')] == [2, 3]


def test_tensorboard_flag_adds_the_backend_once():
    cfg = train_tool.build_config(train_tool.parse_args([KPT_CFG, '--tensorboard']))
    assert [b['type'] for b in cfg.visualizer.vis_backends] == [
        'LocalVisBackend', 'TensorboardVisBackend']
    train_tool.add_tensorboard(cfg)
    assert len(cfg.visualizer.vis_backends) == 2
    plain = train_tool.build_config(train_tool.parse_args([KPT_CFG]))
    assert [b['type'] for b in plain.visualizer.vis_backends] == ['LocalVisBackend']


@pytest.mark.parametrize('config, switch, out_dir', [
    (KPT_CFG, 'enable', 'out_dir'), (DET_CFG, 'draw', 'test_out_dir')])
def test_show_dir_switches_the_configs_hook_on(config, switch, out_dir):
    cfg = test_tool.build_config(test_tool.parse_args(
        [config, 'model.pth', '--show-dir', 'vis', '--score-thr', '0.5']))
    hook = cfg.default_hooks.visualization
    assert (hook[switch], hook[out_dir], hook['score_thr']) == (True, 'vis', 0.5)
    plain = test_tool.build_config(test_tool.parse_args([config, 'model.pth']))
    assert not plain.default_hooks.visualization.get(switch, False)
    with pytest.raises(ValueError, match='only applies with --show-dir'):
        test_tool.build_config(test_tool.parse_args([config, 'model.pth', '--score-thr', '0.5']))


def test_show_dir_needs_a_visualization_hook(tmp_path):
    (tmp_path / 'none.py').write_text('default_hooks = dict()\n')
    with pytest.raises(ValueError, match='needs default_hooks.visualization in .*none.py'):
        test_tool.enable_visualization(Config.fromfile(tmp_path / 'none.py'), 'vis')
    (tmp_path / 'other.py').write_text(
        "default_hooks = dict(visualization=dict(type='MyHook'))\n")
    with pytest.raises(ValueError, match="unknown visualization hook 'MyHook' in .*other.py"):
        test_tool.enable_visualization(Config.fromfile(tmp_path / 'other.py'), 'vis')


# ------------------------------------------------------------------------------- SyncBN
def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


@pytest.fixture
def one_process_group(monkeypatch):
    """A 1-process gloo group, as tools/dist_train.sh would start for rank 0 of 1."""
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=_free_port()).items():
        monkeypatch.setenv(key, value)
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _sync_bn_config(work_dir, implementation):
    from turtle_plugin.engine import setup_cpu_distributed

    args = train_tool.parse_args([KPT_CFG, '--work-dir', str(work_dir), '--launcher', 'pytorch',
                                  '--sync-bn', implementation])
    cfg = train_tool.build_config(args)
    assert cfg.sync_bn == implementation
    assert setup_cpu_distributed(cfg, args.launcher)  # a gloo group: the runner is distributed
    return cfg


def _check_sync_bn(model, sync_bn_type):
    """Every BatchNorm of the tiny keypoint model, and nothing else, became ``sync_bn_type``
    with YOLOv7's eps and momentum."""
    reference = init_model(KPT_CFG)
    expected = [(name, m.num_features) for name, m in reference.named_modules()
                if isinstance(m, torch.nn.BatchNorm2d)]
    # one BatchNorm after each bias-free conv (the head's 1x1 output convs have biases)
    assert len(expected) == sum(1 for m in reference.modules()
                                if isinstance(m, torch.nn.Conv2d) and m.bias is None) > 0
    converted = list(model.named_modules())
    assert [(name, m.num_features) for name, m in converted
            if isinstance(m, sync_bn_type)] == expected
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and
                   not isinstance(m, sync_bn_type) for _, m in converted)
    assert {(m.eps, m.momentum) for _, m in converted if isinstance(m, sync_bn_type)} == {
        (1e-3, 0.03)}


def test_sync_bn_mmcv_runner_converts_every_batchnorm(tmp_path, one_process_group):
    from mmcv.ops import SyncBatchNorm
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner

    runner = Runner.from_cfg(_sync_bn_config(tmp_path, 'mmcv'))
    assert is_model_wrapper(runner.model)
    _check_sync_bn(runner.model.module, SyncBatchNorm)


def test_sync_bn_torch_conversion(tmp_path, one_process_group):
    """The runner converts (DDP then refuses the CPU model for holding torch's SyncBatchNorm:
    the conversion happened); MMEngine's conversion, which the runner calls, keeps YOLOv7's
    BatchNorm settings."""
    from mmengine.model import convert_sync_batchnorm
    from mmengine.runner import Runner

    cfg = _sync_bn_config(tmp_path, 'torch')
    with pytest.raises(ValueError, match='SyncBatchNorm layers only work with GPU modules'):
        Runner.from_cfg(cfg)
    _check_sync_bn(convert_sync_batchnorm(init_model(KPT_CFG), 'torch'), torch.nn.SyncBatchNorm)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU refusal')
def test_sync_bn_is_refused_on_cpu(tmp_path, one_process_group):
    """Neither SyncBatchNorm trains on CPU: DDP will not wrap torch's (above), and mmcv's has
    no CPU kernels. tools/train.py says so before building anything."""
    from mmcv.ops import SyncBatchNorm

    for implementation in ('torch', 'mmcv'):
        with pytest.raises(ValueError, match=f"sync_bn='{implementation}' needs GPUs"):
            train_tool.main([KPT_CFG, '--work-dir', str(tmp_path), '--launcher', 'pytorch',
                             '--sync-bn', implementation])
    assert not torch.distributed.is_initialized()
    torch.distributed.init_process_group('gloo')
    with pytest.raises(RuntimeError, match='sync_bn_forward_mean_impl: implementation for '
                       'device cpu not found'):
        SyncBatchNorm(4).train()(torch.zeros(2, 4, 3, 3))
