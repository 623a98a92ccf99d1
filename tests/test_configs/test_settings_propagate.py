"""Every setting in a config's "frequently modified" band reaches everything that depends on it.

MMEngine evaluates a config file on its own and merges it into its ``_base_``: a value a child
config redefines does not update the dicts its base computed from that value. So each test here
does what a user does -- edit one setting where the config takes it from (its own band, or the
band of the nearest ``_base_`` that defines it), in a copy of ``configs/`` -- and checks the
dataloaders, every pipeline (including MixUp's and mosaic's ``pre_transform``, and
CloseMosaicHook's stage-2 pipeline), the model head, the hooks and the optimizer. The new values
are chosen to appear nowhere else, so a stale copy cannot pass by coincidence.
"""
import ast
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from turtle_plugin.registry import HOOKS

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(str(p.relative_to(REPO / 'configs')) for p in [
    *(REPO / 'configs').glob('*.py'), *(REPO / 'configs').glob('examples/*.py')])
BAND_START = re.compile(r'^# -+ frequently modified$')
BAND_END = re.compile(r'^# -+$')

# setting -> (a value no config uses, the value it replaces must vanish from the config)
NEW_VALUES = {
    'data_root': ('/sentinel/data_root/', True),
    'data_yaml': ('sentinel_data.yaml', True),
    'metainfo': (dict(from_file='sentinel_metainfo.py'), True),
    'num_classes': (7, False),
    'num_keypoints': (9, False),
    'kpt_dim': (3, False),
    'img_scale': ((320, 192), True),
    'batch_size': (13, False),
    'num_workers': (3, False),
    'image_cache_mb': (123, False),
    'max_epochs': (77, False),
    'close_mosaic_epochs': (7, False),
    'close_mosaic_ratio': (0.37, False),
    'val_interval': (3, False),
    'base_lr': (0.0123, False),
    'anchors': ([[(1, 2), (3, 4), (5, 6)], [(7, 8), (9, 10), (11, 12)],
                 [(13, 14), (15, 16), (17, 18)]], True),
}


# ----------------------------------------------------------------------------- config files
def _module(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def _assignments(path: Path) -> dict:
    """Top-level ``name = ...`` statements of a config file: name -> the ast node."""
    return {node.targets[0].id: node for node in _module(path).body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}


def _band(path: Path) -> set:
    """Names assigned between the "frequently modified" line and the closing dashes."""
    lines = path.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if BAND_START.match(line)]
    if not starts:
        return set()
    end = next(i for i in range(starts[0] + 1, len(lines)) if BAND_END.match(lines[i]))
    return {name for name, node in _assignments(path).items()
            if starts[0] < node.lineno - 1 < end}


def _chain(path: Path) -> list:
    """The config and its ``_base_`` files, nearest first."""
    chain = [path]
    while '_base_' in _assignments(chain[-1]):
        chain.append((chain[-1].parent / ast.literal_eval(
            _assignments(chain[-1])['_base_'].value)).resolve())
    return chain


def _settings(config: str) -> dict:
    """The band settings a config has -> the file defining them, nearest first: its own band,
    its own top-level assignment of a name in a base's band, or the nearest base's band."""
    chain = _chain(REPO / 'configs' / config)
    names = set().union(*(_band(path) for path in chain))
    # the mosaic closes after a count of epochs (the schedule's close_mosaic_epochs) or a part
    # of them (the keypoint recipe's close_mosaic_ratio): the one its CloseMosaicHook does not
    # take is no setting of this config
    if {'close_mosaic_epochs', 'close_mosaic_ratio'} <= names:
        close = _hook(Config.fromfile(chain[0]), 'CloseMosaicHook')
        names.discard('close_mosaic_ratio' if close.get('last_ratio') is None
                      else 'close_mosaic_epochs')
    return {name: next(path for path in chain if name in _assignments(path)) for name in names}


def _edited(tmp_path: Path, config: str, edits: dict) -> Config:
    """Load ``config`` from a copy of configs/ in which, for each ``name: value`` of ``edits``,
    ``name = value`` replaces the one statement that defines the setting for this config."""
    shutil.copytree(REPO / 'configs', tmp_path / 'configs')
    settings = _settings(config)
    for name, value in edits.items():
        copy = tmp_path / 'configs' / settings[name].relative_to(REPO / 'configs')
        node = _assignments(copy)[name]
        lines = copy.read_text().splitlines(keepends=True)
        lines[node.lineno - 1:node.end_lineno] = [f'{name} = {value!r}\n']
        copy.write_text(''.join(lines))
    return Config.fromfile(tmp_path / 'configs' / config)


# ----------------------------------------------------------------------------- what depends
def _walk(node):
    """Every dict inside a nested config value."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _walk(value)


def _contains(node, value) -> bool:
    if _same(node, value):
        return True
    if isinstance(node, dict):
        return any(_contains(v, value) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_contains(v, value) for v in node)
    return False


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _same(a, b) -> bool:
    return _plain(a) == _plain(b)


def _loaders(cfg):
    return [cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader]


def _head(cfg):
    return cfg.model.head if 'head' in cfg.model else cfg.model.bbox_head


def _hook(cfg, hook_type):
    hooks = [h for h in [*cfg.custom_hooks, *cfg.default_hooks.values()] if h.type == hook_type]
    assert len(hooks) == 1, hook_type
    return hooks[0]


def _pipelines(cfg) -> dict:
    return dict(train=cfg.train_dataloader.dataset.pipeline,
                val=cfg.val_dataloader.dataset.pipeline,
                test=cfg.test_dataloader.dataset.pipeline,
                stage2=_hook(cfg, 'CloseMosaicHook').new_train_pipeline)


def _sizes(transform: dict) -> dict:
    """The image sizes a transform (or codec) holds: ``(w, h)`` values of its size keys
    (``KptRandomAffine.scale`` is a ratio, not a size)."""
    keys = ('fit_scale', 'img_scale', 'scale', 'input_size')
    return {key: transform[key] for key in keys
            if key in transform and isinstance(transform[key], (list, tuple))}


def _check_img_scale(cfg, value):
    for name, pipeline in _pipelines(cfg).items():
        sizes = [(t.get('type'), key, size) for t in _walk(pipeline)
                 for key, size in _sizes(t).items()]
        assert sizes, name
        for kind, key, size in sizes:
            assert _same(size, value), (name, kind, key)
        for transform in _walk(pipeline):  # the mosaic's affine crops it back to img_scale
            if transform.get('type') == 'KptRandomAffine' and 'border' in transform:
                assert _same(transform['border'], [-value[0] // 2, -value[1] // 2]), name
    types = {t.get('type') for t in _walk(_pipelines(cfg)['train'])}
    assert {'KptLoadImage', 'KptMosaic'} <= types  # nested ones too
    # the p5 recipes (detection, turtle_kpt_p5.py) also mix: 9-image mosaics and MixUp, whose
    # own pre-transforms hold sizes too (checked above, as every nested transform)
    for mixup in (t for t in _walk(cfg.train_dataloader.dataset.pipeline)
                  if t.get('type') == 'KptMixUp'):
        assert any(t.get('type') == 'KptMosaic' for t in _walk(mixup['pre_transform']))
    assert _head(cfg).img_size == value[0]


def _check_epochs(cfg):
    """dynamic_intervals switch to validating every epoch when mosaic closes."""
    intervals = cfg.train_cfg.get('dynamic_intervals')
    if intervals is not None:
        close = _hook(cfg, 'CloseMosaicHook').num_last_epochs
        assert _same(intervals, [(cfg.train_cfg.max_epochs - close, 1)])


def _check_data_root(cfg, value):
    for loader in _loaders(cfg):
        assert loader.dataset.data_root == value


def _check_data_yaml(cfg, value):
    for loader in _loaders(cfg):
        assert loader.dataset.data_yaml == value


def _check_metainfo(cfg, value):
    for loader in _loaders(cfg):
        assert _same(loader.dataset.metainfo, value)
    if 'head' in cfg.model:  # keypoint models: the OKS sigmas come from it
        assert _same(_head(cfg).kpt_sigmas, value)


def _check_head_module(key):
    def check(cfg, value):
        assert _head(cfg).head_module[key] == value
    return check


def _check_batch_size(cfg, value):
    for loader in _loaders(cfg):
        assert loader.batch_size == value
    # the weight decay follows the train dataloader at run time (test below): no second copy
    assert 'batch_size_per_gpu' not in cfg.optim_wrapper.get('paramwise_cfg', {})


def _check_num_workers(cfg, value):
    for loader in _loaders(cfg):
        assert loader.num_workers == value


def _check_image_cache_mb(cfg, value):
    assert cfg.train_dataloader.dataset.image_cache_mb == value


def _check_max_epochs(cfg, value):
    assert cfg.train_cfg.max_epochs == value
    _check_epochs(cfg)


def _check_close_mosaic_epochs(cfg, value):
    close = _hook(cfg, 'CloseMosaicHook')
    assert close.num_last_epochs == value and close.get('last_ratio') is None
    _check_epochs(cfg)


def _check_close_mosaic_ratio(cfg, value):
    close = _hook(cfg, 'CloseMosaicHook')
    assert close.last_ratio == value and close.num_last_epochs is None


def _check_val_interval(cfg, value):
    assert cfg.train_cfg.val_interval == value
    assert cfg.default_hooks.checkpoint.interval == value


def _check_base_lr(cfg, value):
    assert cfg.optim_wrapper.optimizer.lr == value


def _check_anchors(cfg, value):
    assert _same(_head(cfg).anchors, value)


CHECKS = {
    'data_root': _check_data_root,
    'data_yaml': _check_data_yaml,
    'metainfo': _check_metainfo,
    'num_classes': _check_head_module('num_classes'),
    'num_keypoints': _check_head_module('num_keypoints'),
    'kpt_dim': _check_head_module('kpt_dim'),
    'img_scale': _check_img_scale,
    'batch_size': _check_batch_size,
    'num_workers': _check_num_workers,
    'image_cache_mb': _check_image_cache_mb,
    'max_epochs': _check_max_epochs,
    'close_mosaic_epochs': _check_close_mosaic_epochs,
    'close_mosaic_ratio': _check_close_mosaic_ratio,
    'val_interval': _check_val_interval,
    'base_lr': _check_base_lr,
    'anchors': _check_anchors,
}

CASES = [(config, name) for config in CONFIGS for name in sorted(_settings(config))]


def test_every_band_setting_is_checked():
    """A setting added to a band needs a check here (and a value no config uses)."""
    assert {name for _, name in CASES} == set(CHECKS) == set(NEW_VALUES)
    # the recipes hold the whole band; the variants inherit it
    assert set(_settings('turtle_kpt.py')) == set(CHECKS) - {'close_mosaic_epochs'}
    assert set(_settings('turtle_det.py')) == set(CHECKS) - {'num_keypoints', 'kpt_dim',
                                                             'close_mosaic_ratio'}
    assert set(_settings('turtle_kpt_p5.py')) == set(CHECKS) - {'close_mosaic_ratio'}


@pytest.mark.parametrize('config, name', CASES)
def test_setting_reaches_everything_that_depends_on_it(tmp_path, config, name):
    value, must_vanish = NEW_VALUES[name]
    original = Config.fromfile(REPO / 'configs' / config)
    cfg = _edited(tmp_path, config, {name: value})
    assert _same(cfg[name], value)
    CHECKS[name](cfg, value)
    if must_vanish:
        old = {k: v for k, v in original.to_dict().items() if k != name}
        edited = {k: v for k, v in cfg.to_dict().items() if k != name}
        assert _contains(old, original[name])  # it was used
        assert not _contains(edited, original[name]), f'{name}={original[name]!r} left over'


# ----------------------------------------------------------------------------- at run time
@pytest.mark.parametrize('config', CONFIGS)
def test_weight_decay_follows_the_batch_size(tmp_path, config):
    """``batch_size = 13`` where the config sets it: the config's optimizer, once its
    YOLOv7ParamSchedulerHook starts the training, decays for 13 images (5e-4 * 13 / 64)."""
    cfg = _edited(tmp_path, config, dict(batch_size=13))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        hook = HOOKS.build(_hook(cfg, 'YOLOv7ParamSchedulerHook'))
    loader = torch.utils.data.DataLoader(range(26), batch_size=cfg.train_dataloader.batch_size)
    hook.before_train(SimpleNamespace(optim_wrapper=optim_wrapper, train_dataloader=loader,
                                      max_epochs=cfg.train_cfg.max_epochs))
    decay = {g['name']: g['weight_decay'] for g in optim_wrapper.optimizer.param_groups}
    assert decay == pytest.approx(dict(no_decay=0.0, decay=5e-4 * 13 / 64, bias=0.0))


def _transforms(transform):
    """A built transform and every transform inside it (Compose, RandomChoice, pre_transform)."""
    yield transform
    for attr in ('transforms', 'pre_transform'):
        inner = getattr(transform, attr, None)
        for item in inner if isinstance(inner, (list, tuple)) else [inner] * (inner is not None):
            yield from _transforms(item)


def test_built_runner_uses_the_edited_settings(tmp_path, monkeypatch):
    """The README's default config with its settings edited where they are set (img_scale and
    anchors in turtle_kpt.py's band, base_lr in its schedule's, the rest in its own): the Runner
    built from it
    -- train loop, dataloader, the pipeline's transform objects, model head, CloseMosaicHook,
    optimizer after YOLOv7ParamSchedulerHook -- carries the new values."""
    edits = {name: NEW_VALUES[name][0] for name in (
        'img_scale', 'batch_size', 'num_workers', 'max_epochs', 'close_mosaic_ratio',
        'val_interval', 'base_lr', 'anchors')}
    cfg = _edited(tmp_path, 'tiger_kpt_tiny.py', edits)
    cfg.work_dir = str(tmp_path / 'work')
    monkeypatch.chdir(REPO)  # data_root and the metainfo file are relative to the repository
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    loop = runner.train_loop
    assert (loop.max_epochs, loop.val_interval) == (77, 3)
    assert loop.dynamic_milestones == [0] and loop.dynamic_intervals == [3]
    loader = runner.train_dataloader
    assert (loader.batch_size, loader.num_workers) == (13, 3)
    sizes = [(type(t).__name__, getattr(t, attr)) for t in _transforms(loader.dataset.pipeline)
             for attr in ('img_scale', 'fit_scale', 'input_size') if hasattr(t, attr)]
    kinds = {kind for kind, _ in sizes}
    assert {'KptLoadImage', 'KptMosaic'} <= kinds
    assert all(tuple(size) == (320, 192) for _, size in sizes), sizes
    head = runner.model.head
    assert head.img_size == head.head_module.img_size == 320  # loss scaling, objectness prior
    torch.testing.assert_close(head.anchors, torch.tensor(edits['anchors'], dtype=torch.float32))
    # the mosaic closes for 0.37 of the edited epochs: 28 of 77 (28.49 rounded)
    close = next(h for h in runner.hooks if type(h).__name__ == 'CloseMosaicHook')
    assert close.last_ratio == 0.37 and close.last_epochs(loop.max_epochs) == 28
    # the loss's sigma warm-up takes half of the edited epochs: 39 of 77
    warmup = next(h for h in runner.hooks if type(h).__name__ == 'KptSigmaWarmupHook')
    warmup.before_train(runner)
    assert warmup.warmup_epochs == 39
    assert all(_same(t['scale'], (320, 192)) for t in close.new_train_pipeline
               if t['type'] == 'KptLetterResize')
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    schedule = next(h for h in runner.hooks if type(h).__name__ == 'YOLOv7ParamSchedulerHook')
    schedule.before_train(runner)
    groups = {g['name']: g for g in runner.optim_wrapper.optimizer.param_groups}
    assert groups['decay']['initial_lr'] == 0.0123
    assert groups['decay']['weight_decay'] == pytest.approx(5e-4 * 13 / 64)
