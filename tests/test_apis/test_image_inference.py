"""init_model / inference: scopes, checkpoints, metainfo, and the mapping of predictions back to
original-image pixels through the letterbox (hand-computed with injected head outputs)."""
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmpose.structures import PoseDataSample

from turtle_plugin.apis import build_test_pipeline, inference, init_model, load_image
from .helpers import DET_TINY, TIGER_FRAME, TIGER_TINY, inject_head


@pytest.fixture(scope='module')
def tiger_model():
    return init_model(TIGER_TINY, cfg_options={'model.test_cfg.score_thr': 0.5})


@pytest.fixture(scope='module')
def det_model():
    return init_model(DET_TINY, cfg_options={'model.test_cfg.score_thr': 0.5})


def test_keypoint_prediction_maps_back_to_the_frame(tiger_model, monkeypatch):
    # one confident anchor: level 0 (stride 8), anchor 0 (12x16 px), cell i=10, j=12, box t=0:
    # centre ((0.5 + 10) * 8, (0.5 + 12) * 8) = (84, 100) -> input box [78, 92, 90, 108].
    # keypoint k raw (0.25 k, 0) -> ((2 * 0.25 k - 0.5 + 10) * 8, (-0.5 + 12) * 8) = (76 + 4k, 92).
    # The 1280x720 frame is letterboxed to 256: ratio 0.2, 256x144 + 56 px on top, so
    # original = (x / 0.2, (y - 56) / 0.2).
    kpt_raw = torch.stack([torch.arange(12) * 0.25, torch.zeros(12)], dim=1)
    inject_head(monkeypatch, tiger_model.head.head_module, [(0, 0, 10, 12)], kpt_raw)
    sample = inference(tiger_model, str(TIGER_FRAME))
    assert isinstance(sample, PoseDataSample)
    assert tuple(sample.metainfo['ori_shape']) == (720, 1280)
    pred = sample.pred_instances
    np.testing.assert_allclose(pred.bboxes, [[390., 180., 450., 260.]], atol=1e-3)
    np.testing.assert_allclose(pred.scores, [1.], atol=1e-6)
    expected_kpts = np.stack([380. + 20. * np.arange(12), np.full(12, 180.)], axis=1)
    np.testing.assert_allclose(pred.keypoints[0], expected_kpts, atol=1e-3)
    assert pred.keypoint_scores.shape == (1, 12)


@pytest.mark.parametrize('img_scale, expected', [
    # 320x200 into 256x256: ratio 0.8, 256x160 + 48 px on top -> ((x, y - 48) / 0.8)
    (None, [97.5, 55., 112.5, 75.]),
    # into 320x224: no upscaling, ratio 1, 12 px on top -> (x, y - 12)
    ((320, 224), [78., 80., 90., 96.]),
])
def test_detection_maps_back_at_any_input_size(det_model, monkeypatch, img_scale, expected):
    inject_head(monkeypatch, det_model.bbox_head.head_module, [(0, 0, 10, 12)])
    sample = inference(det_model, np.zeros((200, 320, 3), np.uint8), img_scale=img_scale)
    assert isinstance(sample, DetDataSample)
    np.testing.assert_allclose(sample.pred_instances.bboxes.numpy(), [expected], atol=1e-3)
    assert sample.pred_instances.labels.tolist() == [0]
    height, width = (256, 256) if img_scale is None else img_scale[::-1]
    assert tuple(sample.metainfo['batch_input_shape']) == (height, width)


def test_real_forward_on_a_bundled_frame():
    model = init_model(TIGER_TINY, cfg_options={'model.test_cfg.score_thr': 0.0,
                                                'model.test_cfg.max_per_img': 30})
    # metainfo from the config: keypoint names from tiger.py, class names from tiger.yaml
    assert model.dataset_meta['classes'] == ('tiger', )
    assert model.dataset_meta['keypoint_id2name'][11] == 'kpt_11'
    sample = inference(model, str(TIGER_FRAME))
    pred = sample.pred_instances
    assert 0 < len(pred.bboxes) <= 30
    assert pred.keypoints.shape == (len(pred.bboxes), 12, 2)
    # boxes are clipped to the 1280x720 frame, not to the letterboxed input
    assert (pred.bboxes[:, 0::2] >= 0).all() and (pred.bboxes[:, 0::2] <= 1280).all()
    assert (pred.bboxes[:, 1::2] >= 0).all() and (pred.bboxes[:, 1::2] <= 720).all()
    assert (pred.bboxes[:, 2:] >= pred.bboxes[:, :2]).all()


def test_flip_test_through_the_api_pairs_keypoints_by_the_metainfo():
    """inference() hands the model's metainfo flip_indices to the pipeline, so
    model.test_cfg.flip_test works from the API as in tools/test.py; the prediction differs
    from the single pass (a network with random weights is not mirror-equivariant)."""
    options = {'model.test_cfg.score_thr': 0.0, 'model.test_cfg.max_per_img': 30}
    model = init_model(TIGER_TINY, cfg_options=options)
    flipped = init_model(TIGER_TINY,
                         cfg_options=dict(options, **{'model.test_cfg.flip_test': True}))
    sample = inference(flipped, str(TIGER_FRAME))
    partners = list(model.dataset_meta['flip_indices'])
    assert sample.metainfo['flip_indices'] == partners == list(range(12))  # tiger.py: none swap
    pred, single = sample.pred_instances, inference(model, str(TIGER_FRAME)).pred_instances
    assert 0 < len(pred.bboxes) <= 30 and pred.keypoints.shape == (len(pred.bboxes), 12, 2)
    assert (pred.bboxes[:, 0::2] >= 0).all() and (pred.bboxes[:, 0::2] <= 1280).all()
    assert pred.keypoints.shape != single.keypoints.shape or \
        not np.allclose(pred.keypoints, single.keypoints)


def test_batches_and_lists_give_the_single_image_results():
    gen = np.random.default_rng(0)
    imgs = [gen.integers(0, 256, (200, 320, 3), dtype=np.uint8),
            gen.integers(0, 256, (150, 100, 3), dtype=np.uint8)]
    model = init_model(DET_TINY, cfg_options={'model.test_cfg.score_thr': 0.0,
                                              'model.test_cfg.max_per_img': 10})
    batched = inference(model, imgs, batch_size=2)
    assert [s.metainfo['img_id'] for s in batched] == [0, 1]
    for img, sample in zip(imgs, batched):
        single = inference(model, img)
        assert tuple(sample.metainfo['ori_shape']) == img.shape[:2]
        torch.testing.assert_close(sample.pred_instances.bboxes, single.pred_instances.bboxes,
                                   rtol=1e-4, atol=1e-3)


def test_checkpoint_weights_and_metainfo(tmp_path):
    model = init_model(DET_TINY)
    state = {k: v + 0.5 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    meta = dict(dataset_meta=dict(classes=['loggerhead']))
    torch.save(dict(state_dict=state, meta=meta), tmp_path / 'ckpt.pth')
    loaded = init_model(DET_TINY, str(tmp_path / 'ckpt.pth'))
    assert loaded.dataset_meta == dict(classes=['loggerhead'])
    for name, value in loaded.state_dict().items():
        torch.testing.assert_close(value, state[name])
    assert not loaded.training

    state.pop('bbox_head.head_module.det_convs.0.bias')
    torch.save(dict(state_dict=state), tmp_path / 'partial.pth')
    with pytest.raises(RuntimeError, match='det_convs.0.bias'):
        init_model(DET_TINY, str(tmp_path / 'partial.pth'))


def test_config_errors():
    cfg = Config.fromfile(DET_TINY)
    cfg.default_scope = 'mmyolo'
    with pytest.raises(ValueError, match="default_scope"):
        init_model(cfg)
    cfg = Config.fromfile(DET_TINY)
    cfg.test_dataloader.dataset.pipeline = [
        step for step in cfg.test_dataloader.dataset.pipeline
        if step['type'] != 'KptLetterResize']
    build_test_pipeline(cfg)  # fine without a size to set
    with pytest.raises(ValueError, match='no KptLetterResize'):
        build_test_pipeline(cfg, img_scale=(320, 224))


def test_load_image(tmp_path):
    img, path = load_image(str(TIGER_FRAME))
    assert img.shape == (720, 1280, 3) and img.dtype == np.uint8 and path == str(TIGER_FRAME)
    gray, path = load_image(np.zeros((5, 7), np.uint8))
    assert gray.shape == (5, 7, 3) and path is None
    with pytest.raises(FileNotFoundError, match='nothing.jpg'):
        load_image(str(tmp_path / 'nothing.jpg'))
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        load_image(np.zeros((5, 7, 4), np.uint8))
