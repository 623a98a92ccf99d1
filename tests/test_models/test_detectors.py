"""The two model wrappers end to end: ``YOLOv7Detector`` (MMDetection) and
``YOLOv7PoseEstimator`` (MMPose's ``BottomupPoseEstimator``) + ``YOLOv7KptHead`` (MMPose).

Most tests use a three-conv backbone stand-in, registered here only, so they check the glue and
not the backbone; the last test builds the real YOLOv7 backbone + neck + head.
"""
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.model import BaseModule
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from mmpose.registry import MODELS as MMPOSE_MODELS
from mmpose.registry import TRANSFORMS as MMPOSE_TRANSFORMS

from turtle_plugin.models.detectors import YOLOv7Detector
from turtle_plugin.registry import MODELS

IMG = 64
CHANNELS = (8, 16, 32)


@MODELS.register_module(force=True)
class StandInBackbone(BaseModule):
    """Three strided convs: feature maps at strides 8, 16 and 32 (test only)."""

    def __init__(self, channels=CHANNELS):
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Conv2d(3, channels[0], 3, stride=8, padding=1),
            nn.Conv2d(channels[0], channels[1], 3, stride=2, padding=1),
            nn.Conv2d(channels[1], channels[2], 3, stride=2, padding=1)
        ])

    def forward(self, x):
        outs = []
        for conv in self.convs:
            x = torch.relu(conv(x))
            outs.append(x)
        return tuple(outs)


def _head_cfg(type_, num_classes, num_keypoints=0, kpt_dim=2, in_channels=CHANNELS, **kwargs):
    cfg = dict(
        type=type_,
        head_module=dict(type='YOLOv7HeadModule', num_classes=num_classes,
                         in_channels=list(in_channels), num_keypoints=num_keypoints,
                         kpt_dim=kpt_dim),
        img_size=IMG, kpt_sigmas=[0.079] * num_keypoints if num_keypoints else None)
    cfg.update(kwargs)
    return cfg


def _built(registry, cfg):
    """Build in ``registry``'s scope (whatever default scope an earlier test left behind),
    with the same weights whatever ran before."""
    with DefaultScope.overwrite_default_scope(registry.scope), torch.random.fork_rng():
        torch.manual_seed(0)
        model = registry.build(cfg)
        model.init_weights()
    return model


def _image(seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, IMG, IMG), generator=gen, dtype=torch.uint8)


# ------------------------------------------------------------------ MMDetection
def _detector(**kwargs):
    cfg = dict(
        type='YOLOv7Detector', backbone=dict(type='StandInBackbone'), neck=None,
        bbox_head=_head_cfg('YOLOv7Head', num_classes=2),
        data_preprocessor=dict(type='mmdet.DetDataPreprocessor', mean=[0., 0., 0.],
                               std=[255., 255., 255.], bgr_to_rgb=True))
    cfg.update(kwargs)
    return _built(MMDET_MODELS, cfg)


def _det_batch(box_type):
    """An 80x40 (w x h) image letterboxed into 64x64 (scale 0.8, 16 px of padding at the top
    and the bottom) and a 128x128 one resized to 64x64 without padding (no pad_param)."""
    metas = [dict(img_shape=(IMG, IMG), ori_shape=(40, 80), scale_factor=(0.8, 0.8),
                  pad_param=np.array([16., 16., 0., 0.], dtype=np.float32)),
             dict(img_shape=(IMG, IMG), ori_shape=(128, 128), scale_factor=(0.5, 0.5))]
    boxes = [torch.tensor([[4., 20., 40., 44.], [30., 18., 60., 46.]]), torch.zeros(0, 4)]
    labels = [torch.tensor([0, 1]), torch.zeros(0, dtype=torch.long)]
    samples = []
    for meta, box, label in zip(metas, boxes, labels):
        sample = DetDataSample(metainfo=meta)
        sample.gt_instances = InstanceData(bboxes=box_type(box), labels=label)
        samples.append(sample)
    return dict(inputs=[_image(0), _image(1)], data_samples=samples)


@pytest.mark.parametrize('box_type', [HorizontalBoxes, lambda t: t], ids=['boxes', 'tensor'])
def test_detector_loss(box_type):
    model = _detector()
    assert isinstance(model, YOLOv7Detector)
    data = model.data_preprocessor(_det_batch(box_type), training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_box', 'loss_obj', 'loss_cls'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_detector_predict_maps_back_to_original_image():
    model = _detector(test_cfg=dict(score_thr=0.01, max_per_img=50)).eval()
    data = model.data_preprocessor(_det_batch(HorizontalBoxes), training=False)
    with torch.no_grad():
        samples = model(**data, mode='predict')
        in_network = model.bbox_head.predict(model.extract_feat(data['inputs']),
                                             data['data_samples'], rescale=False)
    # undo the letterbox by hand: subtract (left, top), divide by the scale, clip
    for sample, raw, shift, scale, (h, w) in zip(samples, in_network, [(0, 16), (0, 0)],
                                                 [0.8, 0.5], [(40, 80), (128, 128)]):
        pred = sample.pred_instances
        assert len(pred) == len(raw) > 0
        expected = (raw.bboxes - torch.tensor(shift * 2, dtype=torch.float32)) / scale
        expected[:, 0::2] = expected[:, 0::2].clamp(0, w)
        expected[:, 1::2] = expected[:, 1::2].clamp(0, h)
        torch.testing.assert_close(pred.bboxes, expected)
        assert torch.equal(pred.scores, raw.scores) and torch.equal(pred.labels, raw.labels)
        assert pred.scores.min() > 0.01 and len(pred) <= 50


def test_detector_tensor_mode_returns_raw_maps():
    model = _detector()
    data = model.data_preprocessor(_det_batch(HorizontalBoxes), training=False)
    det_maps, kpt_maps = model(data['inputs'], mode='tensor')
    assert [tuple(m.shape) for m in det_maps] == [(2, 21, 8, 8), (2, 21, 4, 4), (2, 21, 2, 2)]
    assert kpt_maps == []


# ------------------------------------------------------------------ MMPose
NUM_KPTS = 6


def _estimator(kpt_dim=2, backbone=None, neck=None, in_channels=CHANNELS):
    return _built(MMPOSE_MODELS, dict(
        type='YOLOv7PoseEstimator',
        backbone=backbone or dict(type='StandInBackbone'),
        neck=neck,
        head=_head_cfg('YOLOv7KptHead', num_classes=1, num_keypoints=NUM_KPTS,
                       kpt_dim=kpt_dim, in_channels=in_channels,
                       assigner=dict(type='YOLOv5Assigner')),
        test_cfg=dict(score_thr=0.01, max_per_img=30),
        data_preprocessor=dict(type='mmpose.PoseDataPreprocessor', mean=[0., 0., 0.],
                               std=[255., 255., 255.], bgr_to_rgb=True)))


def _pose_sample(seed, num_instances):
    """A results dict as the keypoint pipelines leave it, through MMPose's own
    GenerateTarget(YOLOXPoseAnnotationProcessor) and PackPoseInputs."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(4, 30, (num_instances, 2)).astype(np.float32)
    bbox = np.concatenate([xy, xy + rng.uniform(10, 30, (num_instances, 2))], 1)
    keypoints = (bbox[:, None, :2] + rng.uniform(0, 1, (num_instances, NUM_KPTS, 2)) *
                 (bbox[:, None, 2:] - bbox[:, None, :2])).astype(np.float32)
    visible = (rng.uniform(size=(num_instances, NUM_KPTS)) > 0.3).astype(np.float32)
    results = dict(
        img=rng.integers(0, 256, (IMG, IMG, 3), dtype=np.uint8), img_shape=(IMG, IMG),
        ori_shape=(2 * IMG, 4 * IMG), input_size=(IMG, IMG),
        input_center=np.array([2 * IMG, IMG], dtype=np.float32),
        input_scale=np.array([4 * IMG, 4 * IMG], dtype=np.float32),
        bbox=bbox.astype(np.float32), category_id=[1] * num_instances,
        keypoints=keypoints, keypoints_visible=visible,
        area=np.prod(bbox[:, 2:] - bbox[:, :2], axis=1).astype(np.float32),
        flip_indices=list(range(NUM_KPTS)))
    with DefaultScope.overwrite_default_scope('mmpose'):
        results = MMPOSE_TRANSFORMS.build(dict(
            type='GenerateTarget', encoder=dict(type='YOLOXPoseAnnotationProcessor')))(results)
        return MMPOSE_TRANSFORMS.build(dict(type='PackPoseInputs'))(results)


def _pose_batch():
    packed = [_pose_sample(0, 2), _pose_sample(1, 0), _pose_sample(2, 3)]
    return dict(inputs=[p['inputs'] for p in packed],
                data_samples=[p['data_samples'] for p in packed])


@pytest.mark.parametrize('kpt_dim', [2, 3])
def test_pose_estimator_loss(kpt_dim):
    model = _estimator(kpt_dim)
    data = model.data_preprocessor(_pose_batch(), training=True)
    labels = data['data_samples'][0].gt_instance_labels
    assert labels.labels.dtype == torch.int8 and labels.keypoints.shape == (2, NUM_KPTS, 2)
    losses = model(**data, mode='loss')
    expected = {'loss_box', 'loss_obj', 'loss_cls', 'loss_kpt'}
    assert set(losses) == (expected | {'loss_kpt_vis'} if kpt_dim == 3 else expected)
    assert losses['loss_cls'].item() == 0.0  # a single class
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses['loss_kpt'] > 0 and losses['loss_box'] > 0
    sum(losses.values()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_pose_estimator_predict_maps_back_to_original_image():
    model = _estimator(kpt_dim=3).eval()
    data = model.data_preprocessor(_pose_batch(), training=False)
    with torch.no_grad():
        samples = model(**data, mode='predict')
        feats = model.extract_feat(data['inputs'])
        in_network = model.head.predict(feats, data['data_samples'], test_cfg=model.test_cfg)
    for sample, raw in zip(samples, in_network):
        pred = sample.pred_instances
        assert len(raw) > 0 and len(raw) <= 30
        assert raw.keypoints.shape == (len(raw), NUM_KPTS, 2)
        assert raw.keypoint_scores.shape == (len(raw), NUM_KPTS)
        assert set(raw.keys()) >= {'bboxes', 'bbox_scores', 'scores', 'labels', 'keypoints',
                                   'keypoint_scores', 'keypoints_visible'}
        assert (raw.bboxes >= 0).all() and (raw.bboxes <= IMG).all()
        # input 64x64 covers a 256x256 square centred at (128, 64): x * 4 + (0, -64)
        np.testing.assert_allclose(pred.keypoints, raw.keypoints * 4 + np.array([0., -64.]),
                                   rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(pred.bboxes, raw.bboxes * 4 + np.array([0., -64.] * 2),
                                   rtol=1e-5, atol=1e-4)


def test_pose_estimator_flip_test_fuses_the_mirrored_pass_and_maps_back():
    """model.test_cfg.flip_test: MMPose's estimator runs the mirrored batch too, the head fuses
    the two passes with the samples' flip_indices (predict_flip_by_feat), and the result is
    mapped back to the original image as the plain prediction is."""
    model = _estimator(kpt_dim=3).eval()
    model.test_cfg = dict(score_thr=0.01, max_per_img=30, flip_test=True)
    data = model.data_preprocessor(_pose_batch(), training=False)
    with torch.no_grad():
        samples = model(**data, mode='predict')
        det, kpt = model.head(model.extract_feat(data['inputs']))
        flip_det, flip_kpt = model.head(model.extract_feat(data['inputs'].flip(-1)))
        fused = model.head.predict_flip_by_feat(det, kpt, flip_det, flip_kpt,
                                                list(range(NUM_KPTS)), model.test_cfg)
        plain = model.head.predict_by_feat(det, kpt, model.test_cfg)
    assert data['data_samples'][0].metainfo['flip_indices'] == list(range(NUM_KPTS))
    for sample, raw, one_pass in zip(samples, fused, plain):
        pred = sample.pred_instances
        assert len(raw) > 0 and len(pred.keypoints) == len(raw)
        np.testing.assert_allclose(pred.keypoints,
                                   raw.keypoints.numpy() * 4 + np.array([0., -64.]),
                                   rtol=1e-5, atol=1e-4)
        # a network with random weights is not mirror-equivariant: the passes differ
        assert len(one_pass) != len(raw) or not torch.allclose(one_pass.keypoints, raw.keypoints)


def test_pose_head_flip_test_errors_say_what_is_missing():
    model = _estimator()
    data = model.data_preprocessor(_pose_batch(), training=False)
    feats = model.extract_feat(data['inputs'])
    with pytest.raises(ValueError, match=r'set it there \(model.test_cfg\)'):
        model.head.predict(feats, data['data_samples'], test_cfg=dict(flip_test=True))
    for sample in data['data_samples']:
        sample.set_metainfo(dict(flip_indices=None))
    with pytest.raises(ValueError, match="keep 'flip_indices' in the test pipeline"):
        model.head.predict([feats, feats], data['data_samples'], test_cfg=dict(flip_test=True))
    for sample in data['data_samples']:
        sample.set_metainfo(dict(flip_indices=[1, 0, 2]))
    with pytest.raises(ValueError, match='not a permutation of the head'):
        model.head.predict([feats, feats], data['data_samples'], test_cfg=dict(flip_test=True))
    with pytest.raises(NotImplementedError, match='multiscale_test'):
        model.head.predict(feats, data['data_samples'], test_cfg=dict(multiscale_test=True))


# ------------------------------------------------------------------ real backbone + neck
def test_real_backbone_neck_head_train_step():
    """YOLOv7-tiny backbone + PAFPN + keypoint head: one loss, one backward, then predict."""
    model = _estimator(kpt_dim=3, backbone=dict(type='YOLOv7Backbone', arch='tiny'),
                       neck=dict(type='YOLOv7PAFPN', arch='tiny'), in_channels=(128, 256, 512))
    data = model.data_preprocessor(_pose_batch(), training=True)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert missing == []
    model.eval()
    with torch.no_grad():
        samples = model(**model.data_preprocessor(_pose_batch(), training=False), mode='predict')
    assert all(s.pred_instances.keypoints.shape[1:] == (NUM_KPTS, 2) for s in samples)


# ------------------------------------------------------------------ channels checked when built
@pytest.mark.parametrize('scope', ['mmdet', 'mmpose'])
def test_head_channels_checked_against_the_neck_when_built(scope):
    """Switching backbone.arch and neck.arch to 'tiny' but keeping the head sized for 'l' fails
    when the model is built, naming both sides and the value that fits, not with a broadcast
    error inside ImplicitA at the first forward pass."""
    arch = dict(backbone=dict(type='YOLOv7Backbone', arch='tiny'),
                neck=dict(type='YOLOv7PAFPN', arch='tiny'))
    if scope == 'mmdet':
        registry, key = MMDET_MODELS, 'bbox_head'
        cfg = dict(type='YOLOv7Detector', **arch,
                   bbox_head=_head_cfg('YOLOv7Head', 1, in_channels=(256, 512, 1024)))
    else:
        registry, key = MMPOSE_MODELS, 'head'
        cfg = dict(type='YOLOv7PoseEstimator', **arch,
                   head=_head_cfg('YOLOv7KptHead', 1, NUM_KPTS, in_channels=(256, 512, 1024)))
    message = (rf"model\.{key}\.head_module\.in_channels is \[256, 512, 1024\] "
               r"\(YOLOv7HeadModule\) but the neck \(YOLOv7PAFPN, arch 'tiny'\) outputs "
               rf"\[128, 256, 512\] channels: set model\.{key}\.head_module\.in_channels="
               r"\[128, 256, 512\]")
    with pytest.raises(ValueError, match=message):
        _built(registry, cfg)
    cfg[key]['head_module']['in_channels'] = [128, 256, 512]
    assert _built(registry, cfg).backbone.arch == 'tiny'


def test_neck_channels_checked_against_the_backbone_when_built():
    """A 'tiny' backbone under the 'l' neck, whose in_channels default to the 'l' backbone's."""
    cfg = dict(type='YOLOv7PoseEstimator', backbone=dict(type='YOLOv7Backbone', arch='tiny'),
               neck=dict(type='YOLOv7PAFPN', arch='l'),
               head=_head_cfg('YOLOv7KptHead', 1, NUM_KPTS, in_channels=(256, 512, 1024)))
    message = (r"model\.neck\.in_channels is \[512, 1024, 1024\] \(YOLOv7PAFPN, arch 'l'\) but "
               r"the backbone \(YOLOv7Backbone, arch 'tiny'\) outputs \[128, 256, 512\] channels")
    with pytest.raises(ValueError, match=message):
        _built(MMPOSE_MODELS, cfg)
    cfg['neck']['in_channels'] = [128, 256, 512]  # the 'l' neck on the 'tiny' backbone's maps
    model = _built(MMPOSE_MODELS, cfg)
    with torch.no_grad():
        det_maps, _ = model(torch.zeros(1, 3, IMG, IMG), None, mode='tensor')
    assert [m.shape[1] for m in det_maps] == [3 * 6] * 3
