"""Build a model from a config (+ checkpoint) and run it on images, like MMDetection's
``init_detector``/``inference_detector`` and MMPose's ``init_model``/``inference_bottomup``, for
both kinds of turtle_plugin config: an MMDetection ``YOLOv7Detector`` or an MMPose
``BottomupPoseEstimator`` with a ``YOLOv7KptHead``.

Images go through the config's *test* pipeline (letterbox to the training size, or to any
``img_scale``: the network is fully convolutional), and predictions come back in original-image
pixels.
"""
import copy
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
import torch.nn as nn
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from mmengine.structures import BaseDataElement
from mmpose.registry import MODELS as MMPOSE_MODELS

from turtle_plugin.datasets import load_pose_metainfo, read_data_yaml
from .deploy import model_head, to_deploy

__all__ = [
    'ImageInput', 'init_model', 'inference', 'build_test_pipeline', 'metainfo_from_config',
    'load_image', 'post_processing_setting', 'letterbox_size', 'check_checkpoint_keypoints'
]

ImageInput = Union[str, Path, np.ndarray]
SCOPE_REGISTRIES = {'mmdet': MMDET_MODELS, 'mmpose': MMPOSE_MODELS}
# transforms that read ``img_path``; inference hands the pipeline a decoded image instead
LOADING_TRANSFORMS = ('LoadImage', 'LoadImageFromFile', 'KptLoadImage', 'LoadImageFromNDArray')
LETTERBOX_TRANSFORM = 'KptLetterResize'


def _type_name(step: dict) -> str:
    """``'mmpose.LoadImage'`` -> ``'LoadImage'``."""
    type_ = step['type']
    return type_.split('.')[-1] if isinstance(type_, str) else type_.__name__


def _find_file(path: str, config_file: Optional[Path]) -> Optional[Path]:
    """``path`` as given (relative to the working directory), else relative to the config's
    folder or one of its parents (configs name files relative to the repository root)."""
    if Path(path).exists():
        return Path(path)
    if config_file is None or Path(path).is_absolute():
        return None
    for folder in config_file.resolve().parents:
        if (folder / path).exists():
            return folder / path
    return None


def _resolve_metainfo_files(node: Any, config_file: Optional[Path]) -> None:
    """Make every ``from_file`` metainfo path of a config absolute, in place, so a config whose
    metainfo is named relative to the repository root builds from any working directory."""
    if isinstance(node, dict):
        from_file = node.get('from_file')
        if isinstance(from_file, str):
            found = _find_file(from_file, config_file)
            if found is not None:
                node['from_file'] = str(found.resolve())
        for value in node.values():
            _resolve_metainfo_files(value, config_file)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _resolve_metainfo_files(value, config_file)


def _data_yaml(cfg: Config) -> Optional[Path]:
    """The test dataset's data yaml, if it has one that exists."""
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    if not dataset.get('data_yaml'):
        return None
    return _find_file(str(Path(dataset.get('data_root', '')) / dataset['data_yaml']),
                      Path(cfg.filename) if cfg.filename else None)


def _class_names(cfg: Config, metainfo: dict, num_classes: int) -> Tuple[str, ...]:
    """Class names: the metainfo's ``classes``, else the data yaml's ``names``, else the
    dataset name (one class) or ``class_i``."""
    if metainfo.get('classes'):
        return tuple(metainfo['classes'])
    yaml_path = _data_yaml(cfg)
    if yaml_path is not None:
        return tuple(read_data_yaml(yaml_path)['names'])
    if num_classes == 1 and metainfo.get('dataset_name'):
        return (metainfo['dataset_name'], )
    return tuple(f'class_{i}' for i in range(num_classes))


def metainfo_from_config(cfg: Config, num_classes: int) -> dict:
    """Dataset metainfo (keypoint names, skeleton, colours, class names) from a config alone.

    Reads the test dataset's ``metainfo`` (else the config's top-level ``metainfo``) as the
    dataset reads it (:func:`~turtle_plugin.datasets.load_pose_metainfo`: a metainfo file, or
    derived from a data yaml); without one, derives it from the test dataset's data yaml when
    that defines keypoints, as the dataset does. Adds ``classes``.

    Args:
        cfg (Config): the model's config.
        num_classes (int): classes the model predicts (names ``class_i`` when none are found).

    Returns:
        dict: the metainfo; at least ``classes``.
    """
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    raw = dataset.get('metainfo') or cfg.get('metainfo') or {}
    raw = copy.deepcopy(dict(raw))
    yaml_path = _data_yaml(cfg)
    if not ('from_file' in raw or 'keypoint_info' in raw) and yaml_path is not None \
            and read_data_yaml(yaml_path)['kpt_shape'] is not None:
        raw['from_file'] = str(yaml_path)
    if 'from_file' in raw or 'keypoint_info' in raw:
        metainfo = load_pose_metainfo(raw)
    else:
        metainfo = raw
        if metainfo.get('classes') is not None:
            metainfo['classes'] = tuple(metainfo['classes'])
    metainfo['classes'] = _class_names(cfg, metainfo, num_classes)
    return metainfo


def init_model(config: Union[str, Path, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None,
               deploy: bool = False,
               strict: bool = True) -> nn.Module:
    """Build a model from a config, load its weights and prepare it for inference.

    The model is built in the config's ``default_scope`` (``'mmdet'`` or ``'mmpose'``).
    ``model.dataset_meta`` comes from the checkpoint's ``meta['dataset_meta']`` (what MMEngine's
    runner saves) or, without one, from the config (:func:`metainfo_from_config`).
    ``model.cfg`` keeps the (merged) config for :func:`inference`.

    Args:
        config (str | Path | Config): config file or object.
        checkpoint (str, optional): checkpoint path or URL; None leaves the weights as built
            (random: for tests and benchmarks).
        device (str): device to put the model on, e.g. ``'cpu'`` or ``'cuda'``.
        cfg_options (dict, optional): overrides merged into the config, e.g.
            ``{'model.test_cfg.score_thr': 0.3}``.
        deploy (bool): switch to the deploy form (:func:`~turtle_plugin.apis.to_deploy`:
            RepConv re-parameterised, BatchNorm and implicit layers folded into convs).
        strict (bool): every checkpoint weight must match a model weight and vice versa.

    Returns:
        nn.Module: the model, in eval mode.
    """
    config_file = None
    if isinstance(config, (str, Path)):
        config_file = Path(config)
        cfg = Config.fromfile(str(config))
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config)
        config_file = Path(cfg.filename) if cfg.filename else None
    else:
        raise TypeError(f'config must be a path or a Config, got {type(config).__name__}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in SCOPE_REGISTRIES:
        raise ValueError(f'the config must set default_scope to one of '
                         f'{sorted(SCOPE_REGISTRIES)}, got {scope!r}')
    for key in ('model', 'test_dataloader', 'metainfo'):
        _resolve_metainfo_files(cfg.get(key), config_file)

    with DefaultScope.overwrite_default_scope(scope):
        model = SCOPE_REGISTRIES[scope].build(cfg.model)
    model.dataset_meta = metainfo_from_config(cfg, model_head(model).num_classes)
    dataset_meta = None
    if checkpoint is not None:
        ckpt = _load_checkpoint(checkpoint, map_location='cpu')
        if not isinstance(ckpt, dict):
            raise ValueError(f'{checkpoint} holds no state dict')
        check_checkpoint_keypoints(model, ckpt, checkpoint)
        _load_checkpoint_to_model(model, ckpt, strict=strict)
        dataset_meta = ckpt.get('meta', {}).get('dataset_meta')
    if dataset_meta is not None:
        model.dataset_meta = dataset_meta
    model.cfg = cfg
    model.to(device)
    model.eval()
    if deploy:
        to_deploy(model)
    return model


def _keypoint_names(meta: Optional[dict]) -> str:
    names = list((meta or {}).get('keypoint_id2name', {}).values())
    return f' ({", ".join(names)})' if names else ''


def check_checkpoint_keypoints(model: nn.Module, checkpoint: dict, name: str = 'the checkpoint'
                               ) -> None:
    """Refuse a checkpoint whose keypoints are not the ones the config's model predicts, with
    a message naming both (instead of a size mismatch deep in ``load_state_dict``).

    Compares the number of keypoints the checkpoint's ``meta['dataset_meta']`` records (what
    MMEngine's runner saves) with the config's, and the keypoint branch's output convolutions
    (``A * K * kpt_dim`` channels) of both.

    Args:
        model (nn.Module): the model built from the config (``model.head.head_module``).
        checkpoint (dict): the loaded checkpoint (``state_dict`` and optionally ``meta``).
        name (str): how to name the checkpoint in the message (its path).
    """
    head = model_head(model).head_module
    config_meta = getattr(model, 'dataset_meta', None)
    built = (f'the config builds {head.num_keypoints} keypoints x {head.kpt_dim} values '
             f'x {head.num_anchors} anchors')
    saved_meta = checkpoint.get('meta', {}).get('dataset_meta') or {}
    saved = saved_meta.get('num_keypoints')
    if saved is not None and head.num_keypoints and int(saved) != head.num_keypoints:
        raise ValueError(f'{name} was trained on {saved} keypoints'
                         f'{_keypoint_names(saved_meta)} but {built}{_keypoint_names(config_meta)}:'
                         f' use the config the checkpoint was trained with')
    state = checkpoint.get('state_dict', checkpoint)
    state = {key[len('module.'):] if key.startswith('module.') else key: value
             for key, value in state.items()}
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()
                if '.kpt_convs.' in key}
    saved_kpt = {key: tuple(value.shape) for key, value in state.items() if '.kpt_convs.' in key}
    if bool(expected) != bool(saved_kpt):
        raise ValueError(f'{name} has {"a" if saved_kpt else "no"} keypoint branch but the config '
                         f'builds {"one" if expected else "none"}: use the config the checkpoint '
                         f'was trained with')
    for key, shape in expected.items():
        if key in saved_kpt and saved_kpt[key] != shape:
            raise ValueError(f'{name}: the keypoint branch {key} has {saved_kpt[key][0]} output '
                             f'channels but {built} = {shape[0]}{_keypoint_names(config_meta)}: '
                             f'the checkpoint predicts other keypoints than the config\'s '
                             f'metainfo')


def build_test_pipeline(cfg: Config, img_scale: Optional[Sequence[int]] = None) -> Compose:
    """The config's test pipeline, fed with a decoded image instead of a file.

    The loading step is dropped (:func:`inference` decodes the image), and ``img_scale``, when
    given, replaces the letterbox size (``KptLetterResize.scale``).

    Args:
        cfg (Config): the model's config.
        img_scale (Sequence[int], optional): ``(w, h)`` network input size; multiples of 32
            (the largest stride) avoid extra padding.

    Returns:
        Compose: the pipeline, built in the config's scope.
    """
    steps = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    steps = [step for step in steps if _type_name(step) not in LOADING_TRANSFORMS]
    if img_scale is not None:
        if len(img_scale) != 2 or min(img_scale) < 1:
            raise ValueError(f'img_scale must be (w, h) with positive sides, got {img_scale}')
        letterboxes = [step for step in steps if _type_name(step) == LETTERBOX_TRANSFORM]
        if not letterboxes:
            raise ValueError(f'img_scale was given but the test pipeline has no '
                             f'{LETTERBOX_TRANSFORM} to resize to it: '
                             f'{[_type_name(s) for s in steps]}')
        for step in letterboxes:
            step['scale'] = tuple(int(s) for s in img_scale)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        return Compose(steps)


def letterbox_size(cfg: Config) -> Tuple[int, int]:
    """The ``(w, h)`` the config's test pipeline letterboxes images to (the training size)."""
    for step in cfg.test_dataloader.dataset.pipeline:
        if _type_name(step) == LETTERBOX_TRANSFORM:
            return tuple(int(s) for s in step['scale'])
    raise ValueError(f'the test pipeline has no {LETTERBOX_TRANSFORM}: '
                     f'{[_type_name(s) for s in cfg.test_dataloader.dataset.pipeline]}')


def load_image(img: ImageInput) -> Tuple[np.ndarray, Optional[str]]:
    """A BGR ``uint8`` ``(H, W, 3)`` image and its path (None for an array).

    Args:
        img (str | Path | np.ndarray): image file, or an array as OpenCV reads it (BGR; a
            single-channel ``(H, W)`` array is converted).

    Returns:
        tuple[np.ndarray, str | None]: the image and its path.
    """
    if isinstance(img, np.ndarray):
        if img.ndim == 2:
            img = mmcv.gray2bgr(img)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'expected an (H, W, 3) BGR image, got shape {img.shape}')
        return img, None
    if not isinstance(img, (str, Path)):
        raise TypeError(f'an image must be a path or an np.ndarray, got {type(img).__name__}')
    if not Path(img).is_file():
        raise FileNotFoundError(f'image {img} does not exist')
    array = mmcv.imread(str(img), channel_order='bgr')
    if array is None:
        raise ValueError(f'OpenCV could not decode {img}')
    return array, str(img)


def _clip_boxes(sample: BaseDataElement) -> BaseDataElement:
    """Clip predicted boxes to the original image (MMPose's estimator maps them back without
    clipping, so a box reaching into the letterbox padding would leave the image)."""
    pred = sample.pred_instances
    if 'bboxes' not in pred or len(pred.bboxes) == 0:
        return sample
    height, width = sample.metainfo['ori_shape'][:2]
    bboxes = pred.bboxes
    if isinstance(bboxes, np.ndarray):
        bboxes = bboxes.copy()
        bboxes[:, 0::2] = bboxes[:, 0::2].clip(0, width)
        bboxes[:, 1::2] = bboxes[:, 1::2].clip(0, height)
    else:
        bboxes = getattr(bboxes, 'tensor', bboxes).clone()
        bboxes[:, 0::2] = bboxes[:, 0::2].clamp(0, width)
        bboxes[:, 1::2] = bboxes[:, 1::2].clamp(0, height)
    pred.bboxes = bboxes
    return sample


def inference(model: nn.Module,
              imgs: Union[ImageInput, Sequence[ImageInput]],
              img_scale: Optional[Sequence[int]] = None,
              batch_size: int = 1) -> Union[BaseDataElement, List[BaseDataElement]]:
    """Run a model from :func:`init_model` on one image or a list of images.

    Each image is letterboxed by the config's test pipeline (to ``img_scale`` when given), run
    through the network and post-processed (score threshold, NMS: the config's
    ``model.test_cfg``); predictions are mapped back to the original image.

    Args:
        model (nn.Module): a model from :func:`init_model` (it needs ``model.cfg``).
        imgs (str | Path | np.ndarray | Sequence): image path(s) or BGR array(s).
        img_scale (Sequence[int], optional): ``(w, h)`` network input size instead of the
            config's (e.g. ``(1280, 736)`` for 1280x720 frames).
        batch_size (int): images per forward pass.

    Returns:
        DetDataSample | PoseDataSample | list: per image, a data sample whose
        ``pred_instances`` hold ``bboxes`` ``(n, 4)`` xyxy (clipped to the image), ``scores``,
        ``labels`` and, for keypoint models, ``keypoints`` ``(n, K, 2)`` and
        ``keypoint_scores`` ``(n, K)``, in original-image pixels. A single image gives a single
        sample. (MMDetection models hold tensors, MMPose models numpy arrays.)
    """
    if not hasattr(model, 'cfg'):
        raise ValueError('the model has no `cfg`: build it with turtle_plugin.apis.init_model')
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    single = isinstance(imgs, (str, Path, np.ndarray))
    imgs = [imgs] if single else list(imgs)
    pipeline = build_test_pipeline(model.cfg, img_scale)
    # the keypoints' mirror partners, as MMPose's datasets add them (model.test_cfg.flip_test)
    meta = getattr(model, 'dataset_meta', None) or {}
    extra = {'flip_indices': list(meta['flip_indices'])} if 'flip_indices' in meta else {}
    samples = []
    with DefaultScope.overwrite_default_scope(model.cfg.get('default_scope')):
        for start in range(0, len(imgs), batch_size):
            batch = []
            for index, img in enumerate(imgs[start:start + batch_size], start):
                array, path = load_image(img)
                batch.append(pipeline(dict(img=array, img_path=path, img_id=index,
                                           ori_shape=array.shape[:2],
                                           img_shape=array.shape[:2], **extra)))
            with torch.no_grad():
                samples.extend(model.test_step(pseudo_collate(batch)))
    samples = [_clip_boxes(sample) for sample in samples]
    return samples[0] if single else samples


def post_processing_setting(model: nn.Module, key: str, default: Any) -> Any:
    """A post-processing setting of the model's config (``model.test_cfg``), e.g.
    ``'nms.iou_threshold'``."""
    node: Any = model.cfg.model.get('test_cfg') or ConfigDict()
    for part in key.split('.'):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node

