"""Convert an official YOLOv7 checkpoint (WongKinYiu/yolov7) to a turtle_plugin checkpoint.

Supported: the training configs ``cfg/training/yolov7-tiny.yaml``, ``yolov7.yaml`` (l) and
``yolov7x.yaml`` (x), with their ``IDetect`` head (or a plain ``Detect`` head), optionally
YOLO-Pose's ``IKeypoint`` head with a single-conv keypoint branch. The output is an MMEngine
checkpoint ``{'state_dict': ..., 'meta': ...}`` for ``YOLOv7Backbone`` + ``YOLOv7PAFPN`` +
``YOLOv7HeadModule`` under MMPose's ``BottomupPoseEstimator`` (``head.head_module.*``,
``--scope mmpose``) or MMDetection's ``YOLOv7Detector`` (``bbox_head.head_module.*``).

Sources:

- a plain state-dict file (``{'state_dict': sd}``, ``{'model': sd}`` or a bare dict of tensors
  with the original ``model.N.*`` keys), loaded with ``weights_only=True``;
- an official ``.pt`` file, which pickles the whole original ``Model``: pass
  ``--yolov7-root`` (a clone of WongKinYiu/yolov7) so its classes can be imported. Unpickling
  runs code from the file, so do it only for files you trust. The EMA weights are taken when
  the file has them, as the original's ``attempt_load`` does.

An IKeypoint head lays one anchor's outputs across its detection and keypoint convs (it
concatenates the two maps before splitting them per anchor); the converter moves those rows
into our per-anchor layout, folding ImplicitA/ImplicitM where a row changes conv, so outputs
agree to float rounding. Re-parameterised RepConv layers (``rbr_reparam``) convert too; load
them into a model after ``model.neck.switch_to_deploy()``.

Anchors are not weights here (they are a config value): the converter prints them in pixels,
ready to paste into a config, and records them in ``meta['anchors']``.

Usage::

    python tools/model_converters/yolov7_to_turtle.py yolov7-tiny.pt tiny.pth \\
        --yolov7-root ~/src/yolov7 --scope mmpose
"""
import argparse
import contextlib
import os.path as osp
import pickle
import re
import sys
import warnings
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = [
    'ARCH_LAYOUTS', 'HEAD_PREFIXES', 'HEAD_INDEX', 'build_prefix_map', 'map_key',
    'convert_state_dict', 'to_original_state_dict', 'load_source_state_dict', 'format_anchors',
    'main'
]

# Where the converted head lives in each host library's model.
HEAD_PREFIXES = dict(mmdet='bbox_head.head_module.', mmpose='head.head_module.')
STRIDES = (8, 16, 32)
NO_PARAMS = ('none', None)  # a parameter-free layer: max pool, upsample or concat


def _backbone_lx(num_blocks: int, num_convs: int) -> List[tuple]:
    rows = [('conv', 'backbone.stem.0'), ('conv', 'backbone.stem.1'), ('conv', 'backbone.stem.2'),
            ('conv', 'backbone.stage1.0'), ('elan', 'backbone.stage1.1', num_blocks, num_convs)]
    for stage in (2, 3, 4):
        rows += [('mp', f'backbone.stage{stage}.0'),
                 ('elan', f'backbone.stage{stage}.1', num_blocks, num_convs)]
    return rows


def _backbone_tiny() -> List[tuple]:
    rows = [('conv', 'backbone.stem.0'), ('conv', 'backbone.stage1.0'),
            ('elan', 'backbone.stage1.1', 2, 1)]
    for stage in (2, 3, 4):
        rows += [NO_PARAMS, ('elan', f'backbone.stage{stage}.1', 2, 1)]
    return rows


def _neck(reduce_layer: str, downsample: str, out_layer: str, num_blocks: int,
          num_convs: int) -> List[tuple]:
    """The ``head`` part of the original YAMLs, in order (the same for the three variants)."""
    rows = [(reduce_layer, 'neck.reduce_layer')]
    for level in (1, 0):  # top-down: P4 then P3
        rows += [('conv', f'neck.upsample_convs.{level}'), NO_PARAMS,
                 ('conv', f'neck.lateral_convs.{level}'), NO_PARAMS,
                 ('elan', f'neck.top_down_blocks.{level}', num_blocks, num_convs)]
    for level in (0, 1):  # bottom-up: P4 then P5
        rows.append((downsample, f'neck.downsample_layers.{level}'))
        if downsample == 'conv':  # the MP layers end with the concat; a conv is followed by one
            rows.append(NO_PARAMS)
        rows.append(('elan', f'neck.bottom_up_blocks.{level}', num_blocks, num_convs))
    return rows + [(out_layer, f'neck.out_layers.{level}') for level in range(3)]


# Original layers in order, one row per layer or block of layers:
# ('conv' | 'repconv' | 'sppcspc', prefix): one layer; ('mp', prefix): 5 layers (max pool, 1x1,
# 1x1, 3x3/2, concat); ('elan', prefix, num_blocks, num_convs): num_blocks * num_convs + 4 layers;
# ('sppcspc_tiny', prefix): 9 layers; NO_PARAMS: one parameter-free layer. The detection head
# comes right after the last row.
ARCH_LAYOUTS = {
    'tiny': _backbone_tiny() + _neck('sppcspc_tiny', 'conv', 'conv', 2, 1),
    'l': _backbone_lx(2, 2) + _neck('sppcspc', 'mp', 'repconv', 4, 1),
    'x': _backbone_lx(3, 2) + _neck('sppcspc', 'mp', 'conv', 3, 2),
}
# Renames inside single original layers (the rest of the key is kept).
SPPCSPC_RENAMES = dict(cv1='main_convs.0', cv3='main_convs.1', cv4='main_convs.2',
                       cv5='fuse_convs.0', cv6='fuse_convs.1', cv2='short_conv', cv7='final_conv')
REPCONV_RENAMES = {'rbr_dense.0': 'rbr_dense.conv', 'rbr_dense.1': 'rbr_dense.bn',
                   'rbr_1x1.0': 'rbr_1x1.conv', 'rbr_1x1.1': 'rbr_1x1.bn',
                   'rbr_identity': 'rbr_identity', 'rbr_reparam': 'rbr_reparam'}


def _row_prefixes(row: tuple, first: int) -> Tuple[Dict[str, str], int]:
    """Original-layer prefixes of one layout row -> new prefixes, and the next layer index."""
    kind, prefix = row[0], row[1]
    if kind == 'none':
        return {}, first + 1
    if kind == 'conv':
        return {f'{first}': prefix}, first + 1
    if kind == 'sppcspc':
        return {f'{first}.{old}': f'{prefix}.{new}' for old, new in SPPCSPC_RENAMES.items()}, \
            first + 1
    if kind == 'repconv':
        return {f'{first}.{old}': f'{prefix}.{new}' for old, new in REPCONV_RENAMES.items()}, \
            first + 1
    if kind == 'mp':
        names = {1: 'maxpool_branch.1', 2: 'stride_conv_branch.0', 3: 'stride_conv_branch.1'}
        return {f'{first + i}': f'{prefix}.{name}' for i, name in names.items()}, first + 5
    if kind == 'sppcspc_tiny':
        names = {0: 'short_conv', 1: 'main_conv', 6: 'fuse_conv', 8: 'final_conv'}
        return {f'{first + i}': f'{prefix}.{name}' for i, name in names.items()}, first + 9
    if kind == 'elan':
        num_blocks, num_convs = row[2], row[3]
        mapping = {f'{first}': f'{prefix}.short_conv', f'{first + 1}': f'{prefix}.main_conv'}
        for k in range(num_blocks * num_convs):
            mapping[f'{first + 2 + k}'] = f'{prefix}.blocks.{k // num_convs}.{k % num_convs}'
        last = first + 2 + num_blocks * num_convs + 1  # after the concat
        mapping[f'{last}'] = f'{prefix}.final_conv'
        return mapping, last + 1
    raise ValueError(f'unknown layout row kind {kind!r}')


def build_prefix_map(arch: str) -> Tuple[Dict[str, str], int]:
    """Backbone and neck prefixes of one variant: ``'model.51.cv1' -> 'neck.reduce_layer...'``.

    Args:
        arch (str): ``'tiny'``, ``'l'`` or ``'x'``.

    Returns:
        tuple[dict[str, str], int]: original prefix -> new prefix, and the layer index of the
        detection head.
    """
    if arch not in ARCH_LAYOUTS:
        raise KeyError(f'unknown arch {arch!r}, expected one of {list(ARCH_LAYOUTS)}')
    mapping, index = {}, 0
    for row in ARCH_LAYOUTS[arch]:
        row_map, index = _row_prefixes(row, index)
        mapping.update({f'model.{old}': new for old, new in row_map.items()})
    return mapping, index


# Head layer index of each variant, derived from the layouts (77, 105, 121).
HEAD_INDEX = {arch: build_prefix_map(arch)[1] for arch in ARCH_LAYOUTS}


def map_key(key: str, prefix_map: Dict[str, str]) -> Optional[str]:
    """Rename ``key`` by its longest prefix (whole dotted components) in ``prefix_map``.

    Args:
        key (str): a state-dict key.
        prefix_map (dict[str, str]): old prefix -> new prefix.

    Returns:
        str | None: the new key, or None when no prefix matches.
    """
    parts = key.split('.')
    for end in range(len(parts), 0, -1):
        prefix = '.'.join(parts[:end])
        if prefix in prefix_map:
            return '.'.join([prefix_map[prefix]] + parts[end:])
    return None


# ------------------------------------------------------------------------------ head
def _original_row(anchor: int, field: int, num_det: int, num_kpt: int,
                  num_anchors: int) -> Tuple[str, int]:
    """Which conv row of the original IDetect/IKeypoint gives an anchor's field.

    The original concatenates ``im(m(ia(x)))`` (``A * (5 + C)`` rows) and ``m_kpt(x)``
    (``A * 3K`` rows) and *then* views the result as ``(A, 5 + C + 3K)``, so anchor ``a``'s
    fields are rows ``a * (5 + C + 3K) ...`` of the concatenation, across both convs.
    """
    row = anchor * (num_det + num_kpt) + field
    det_rows = num_anchors * num_det
    return ('implicit', row) if row < det_rows else ('plain', row - det_rows)


def _our_row(anchor: int, field: int, num_det: int, num_kpt: int,
             num_anchors: int) -> Tuple[str, int]:
    """Which conv row of YOLOv7HeadModule gives an anchor's field (det fields first)."""
    if field < num_det:
        return 'implicit', anchor * num_det + field
    return 'plain', anchor * num_kpt + field - num_det


def _move_rows(src: dict, ia: Tensor, src_row, dst_row, num_anchors: int, num_det: int,
               num_kpt: int) -> dict:
    """Re-lay the output rows of one level's two 1x1 convs, keeping every output the same.

    Both layouts have an *implicit* conv (``im * (W (x + ia) + b)``, ``A * (5 + C)`` rows) and
    a *plain* one (``W x + b``, ``A * K * 3`` rows); they differ in which rows hold which
    (anchor, field). A row that changes conv is folded: into a plain row as
    ``W' = im W, b' = im (W ia + b)``; into an implicit row as ``W' = W, b' = b - W ia, im = 1``.

    Args:
        src (dict): ``implicit_w`` ``(R, C_in, 1, 1)``, ``implicit_b``, ``im`` ``(R,)``,
            ``plain_w``, ``plain_b``.
        ia (Tensor): ``(C_in,)`` the shared ImplicitA.
        src_row, dst_row: ``(anchor, field, ...) -> (conv, row)`` of the source / target.
        num_anchors (int): anchors per level.
        num_det (int): ``5 + C``.
        num_kpt (int): ``3 * K``.

    Returns:
        dict: the same keys in the target layout.
    """
    dst = {name: torch.empty_like(value) for name, value in src.items()}
    for anchor in range(num_anchors):
        for field in range(num_det + num_kpt):
            src_conv, i = src_row(anchor, field, num_det, num_kpt, num_anchors)
            dst_conv, j = dst_row(anchor, field, num_det, num_kpt, num_anchors)
            weight, bias = src[f'{src_conv}_w'][i], src[f'{src_conv}_b'][i]
            if src_conv == dst_conv == 'implicit':
                dst['im'][j] = src['im'][i]
            elif src_conv == 'implicit':  # fold ia and im into a plain row
                weight, bias = src['im'][i] * weight, src['im'][i] * (weight.flatten() @ ia + bias)
            elif dst_conv == 'implicit':  # a plain row behind an identity im, ia cancelled
                bias = bias - weight.flatten() @ ia
                dst['im'][j] = 1.0
            dst[f'{dst_conv}_w'][j] = weight
            dst[f'{dst_conv}_b'][j] = bias
    return dst


def _has_kpt_branch(keys: Sequence[str], single_conv: str, any_conv: str) -> bool:
    """Whether the keys hold a single-conv keypoint branch; a deeper one is refused.

    YOLO-Pose's depthwise branch (``dw_conv_kpt=True``) cannot be converted: the original
    splits each anchor's outputs across the detection conv and the keypoint branch's last
    conv (see :func:`_original_row`), and behind a depthwise stack those rows no longer see
    the same input.
    """
    if any(re.match(any_conv, key) for key in keys) and \
            not any(re.match(single_conv, key) for key in keys):
        raise ValueError("the checkpoint's keypoint branch is YOLO-Pose's depthwise stack "
                         '(dw_conv_kpt=True), which YOLOv7HeadModule cannot reproduce: only a '
                         'single-conv keypoint branch converts')
    return any(re.match(single_conv, key) for key in keys)


def _convert_head(sd: Dict[str, Tensor], head: str, num_keypoints: Optional[int],
                  prefix: str) -> Tuple[Dict[str, Tensor], dict]:
    """IDetect / Detect / IKeypoint ``model.{head}.*`` -> ``head_module.*`` keys and meta."""
    h = f'model.{head}.'
    known = re.compile(re.escape(h) + r'(anchors|anchor_grid|m\.\d+\.(weight|bias)|'
                       r'(ia|im)\.\d+\.implicit|m_kpt\..+)$')
    unknown = [k for k in sd if k.startswith(h) and not known.match(k)]
    if unknown:
        raise ValueError(f'the head (layer {head}) has parameters this converter does not know '
                         f'(an auxiliary or other head type?): {unknown[:5]}')
    if h + 'anchor_grid' in sd:
        anchors = sd[h + 'anchor_grid'].float().reshape(len(STRIDES), -1, 2)
    elif h + 'anchors' in sd:  # stored divided by the stride
        anchors = sd[h + 'anchors'].float() * torch.tensor(STRIDES, dtype=torch.float32)[:, None,
                                                                                            None]
    else:
        raise KeyError(f'no {h}anchors / {h}anchor_grid: is layer {head} the detection head?')
    num_anchors = anchors.shape[1]
    num_det = sd[h + 'm.0.weight'].shape[0] // num_anchors
    has_kpt = _has_kpt_branch(list(sd), re.escape(h) + r'm_kpt\.0\.weight$',
                              re.escape(h) + r'm_kpt\.')
    kpt_rows = sd[h + 'm_kpt.0.weight'].shape[0] if has_kpt else 0
    if kpt_rows % (3 * num_anchors):
        raise ValueError(f'{h}m_kpt has {kpt_rows} output rows, not a multiple of '
                         f'3 x {num_anchors} anchors')
    found_kpts = kpt_rows // (3 * num_anchors)
    if num_keypoints is not None and has_kpt and num_keypoints != found_kpts:
        raise ValueError(f'--num-keypoints {num_keypoints} but the checkpoint predicts '
                         f'{found_kpts} keypoints')

    out, meta = {}, dict(anchors=anchors.tolist(), num_classes=num_det - 5,
                         num_keypoints=found_kpts, kpt_dim=3 if found_kpts else None,
                         kpt_head='conv' if has_kpt else None,
                         head_type='IKeypoint' if has_kpt else (
                             'IDetect' if h + 'ia.0.implicit' in sd else 'Detect'))
    for level in range(len(STRIDES)):
        weight = sd[f'{h}m.{level}.weight'].float()
        in_channels = weight.shape[1]
        # a plain Detect head is an IDetect with ia = 0 and im = 1
        ia = sd.get(f'{h}ia.{level}.implicit', torch.zeros(1, in_channels, 1, 1)).float()
        im = sd.get(f'{h}im.{level}.implicit', torch.ones(1, weight.shape[0], 1, 1)).float()
        src = dict(implicit_w=weight, implicit_b=sd[f'{h}m.{level}.bias'].float(),
                   im=im.flatten().clone())
        if has_kpt:  # our branch is nn.Sequential(conv): its conv is kpt_convs.{level}.0
            src.update(plain_w=sd[f'{h}m_kpt.{level}.weight'].float(),
                       plain_b=sd[f'{h}m_kpt.{level}.bias'].float())
            src = _move_rows(src, ia.flatten(), _original_row, _our_row, num_anchors, num_det,
                             3 * found_kpts)
            out[f'{prefix}kpt_convs.{level}.0.weight'] = src['plain_w']
            out[f'{prefix}kpt_convs.{level}.0.bias'] = src['plain_b']
        out[f'{prefix}det_convs.{level}.weight'] = src['implicit_w']
        out[f'{prefix}det_convs.{level}.bias'] = src['implicit_b']
        out[f'{prefix}implicit_a.{level}.implicit'] = ia.clone()
        out[f'{prefix}implicit_m.{level}.implicit'] = src['im'].view(1, -1, 1, 1)
    return out, meta


def _infer_arch(sd: Dict[str, Tensor]) -> str:
    for arch, head in HEAD_INDEX.items():
        if f'model.{head}.m.0.weight' in sd:
            return arch
    raise ValueError(f'no detection head at layer {sorted(HEAD_INDEX.values())} '
                     f'({", ".join(f"{a}: {i}" for a, i in HEAD_INDEX.items())}): not a '
                     f'yolov7-tiny / yolov7 / yolov7x training checkpoint; pass --arch to check')


def convert_state_dict(sd: Dict[str, Tensor],
                       arch: Optional[str] = None,
                       scope: str = 'mmpose',
                       num_keypoints: Optional[int] = None) -> Tuple[Dict[str, Tensor], dict]:
    """Rename an original YOLOv7 state dict to turtle_plugin's keys.

    Args:
        sd (dict[str, Tensor]): the original ``model.N.*`` state dict.
        arch (str, optional): ``'tiny'``, ``'l'`` or ``'x'``; inferred from the head's layer
            index when None.
        scope (str): ``'mmpose'`` (head under ``head.``) or ``'mmdet'`` (``bbox_head.``).
        num_keypoints (int, optional): expected keypoints of an IKeypoint head (checked); the
            number is read from the checkpoint.

    Returns:
        tuple[dict[str, Tensor], dict]: the new float32 state dict and meta (``arch``,
        ``anchors`` in pixels per level, ``strides``, ``num_classes``, ``num_keypoints``,
        ``kpt_dim``, ``kpt_head``, ``head_type``, ``fused_repconv``).
    """
    if scope not in HEAD_PREFIXES:
        raise ValueError(f'scope must be one of {list(HEAD_PREFIXES)}, got {scope!r}')
    sd = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}
    arch = arch or _infer_arch(sd)
    prefix_map, head = build_prefix_map(arch)
    if f'model.{head}.m.0.weight' not in sd:
        raise ValueError(f'arch {arch!r} has its detection head at layer {head}, but the '
                         f'checkpoint has no model.{head}.m.0.weight (another variant?)')
    fused = [k for k in sd if k.endswith('.conv.bias') and not k.startswith(f'model.{head}.')]
    if fused:
        raise ValueError(f'{fused[0]}: the checkpoint has fused conv+BN layers (Model.fuse()); '
                         f'convert the unfused training checkpoint instead')

    out, unmapped = {}, []
    for key, value in sd.items():
        if key.startswith(f'model.{head}.'):
            continue
        new_key = map_key(key, prefix_map)
        if new_key is None:
            unmapped.append(key)
            continue
        out[new_key] = value.float() if value.is_floating_point() else value
    if unmapped:
        raise ValueError(f'{len(unmapped)} keys of the checkpoint belong to no layer of '
                         f'YOLOv7-{arch}: {unmapped[:5]}')
    head_sd, meta = _convert_head(sd, head, num_keypoints, HEAD_PREFIXES[scope])
    out.update(head_sd)
    meta.update(arch=arch, strides=list(STRIDES), scope=scope,
                fused_repconv=any('.rbr_reparam.' in key for key in out))
    return out, meta


def to_original_state_dict(sd: Dict[str, Tensor], arch: str, anchors: Sequence,
                           scope: str = 'mmpose') -> Dict[str, Tensor]:
    """The inverse of :func:`convert_state_dict`: turtle_plugin keys -> original keys.

    Args:
        sd (dict[str, Tensor]): a state dict of our model (``backbone.*``, ``neck.*`` and the
            head's ``head_module.*``; other keys are ignored).
        arch (str): ``'tiny'``, ``'l'`` or ``'x'``.
        anchors (Sequence): ``(3, A, 2)`` anchors in pixels.
        scope (str): where the head lives, ``'mmpose'`` or ``'mmdet'``.

    Returns:
        dict[str, Tensor]: the original ``model.N.*`` state dict, with ``anchors`` (divided by
        the strides) and ``anchor_grid`` (pixels) as the original stores them.
    """
    prefix_map, head = build_prefix_map(arch)
    inverse = {new: old for old, new in prefix_map.items()}
    prefix, h = HEAD_PREFIXES[scope], f'model.{head}.'
    out = {}
    for key, value in sd.items():
        if key.startswith(('backbone.', 'neck.')):
            old_key = map_key(key, inverse)
            if old_key is None:
                raise KeyError(f'{key} has no counterpart in the original YOLOv7-{arch}')
            out[old_key] = value

    anchors = torch.as_tensor(anchors, dtype=torch.float32)
    num_anchors = anchors.shape[1]
    out[h + 'anchors'] = anchors / torch.tensor(STRIDES, dtype=torch.float32)[:, None, None]
    out[h + 'anchor_grid'] = anchors.view(len(STRIDES), 1, num_anchors, 1, 1, 2).clone()
    head_keys = [k[len(prefix):] for k in sd if k.startswith(prefix)]
    has_kpt = _has_kpt_branch(head_keys, r'kpt_convs\.0\.0\.weight$', r'kpt_convs\.')
    for level in range(len(STRIDES)):
        num_det = sd[f'{prefix}det_convs.{level}.weight'].shape[0] // num_anchors
        ia = sd[f'{prefix}implicit_a.{level}.implicit']
        src = dict(implicit_w=sd[f'{prefix}det_convs.{level}.weight'],
                   implicit_b=sd[f'{prefix}det_convs.{level}.bias'],
                   im=sd[f'{prefix}implicit_m.{level}.implicit'].flatten().clone())
        if has_kpt:
            src.update(plain_w=sd[f'{prefix}kpt_convs.{level}.0.weight'],
                       plain_b=sd[f'{prefix}kpt_convs.{level}.0.bias'])
            num_kpt = src['plain_w'].shape[0] // num_anchors
            src = _move_rows(src, ia.flatten(), _our_row, _original_row, num_anchors, num_det,
                             num_kpt)
            out[f'{h}m_kpt.{level}.weight'] = src['plain_w']
            out[f'{h}m_kpt.{level}.bias'] = src['plain_b']
        out[f'{h}m.{level}.weight'] = src['implicit_w']
        out[f'{h}m.{level}.bias'] = src['implicit_b']
        out[f'{h}ia.{level}.implicit'] = ia.clone()
        out[f'{h}im.{level}.implicit'] = src['im'].view(1, -1, 1, 1)
    return out


# ------------------------------------------------------------------------------ I/O
@contextlib.contextmanager
def _importable(root: str) -> Iterator[None]:
    """Let pickles name the original's ``models.*`` / ``utils.*`` classes, for this block only.

    The official checkpoints pickle classes of top-level packages called ``models`` and
    ``utils``. Inside the block they resolve to ``root``'s; afterwards those modules are
    dropped and any other ``models`` / ``utils`` modules loaded before are put back.
    """
    root = osp.abspath(osp.expanduser(root))
    if not osp.isfile(osp.join(root, 'models', 'yolo.py')):
        raise FileNotFoundError(f'{root} is not a YOLOv7 source tree (no models/yolo.py)')

    def owned() -> List[str]:
        return [name for name in sys.modules if name.split('.')[0] in ('models', 'utils')]

    saved = {name: sys.modules.pop(name) for name in owned()}
    sys.path.insert(0, root)
    try:
        yield
    finally:
        sys.path.remove(root)
        for name in owned():
            del sys.modules[name]
        sys.modules.update(saved)


def _state_dict_of(obj, path: str) -> Dict[str, Tensor]:
    """The state dict inside a loaded file: ``state_dict`` / ``model`` / bare, or a Module."""
    if isinstance(obj, torch.nn.Module):
        return {k: v.detach() for k, v in obj.float().state_dict().items()}
    if isinstance(obj, dict):
        for key in ('ema', 'model', 'state_dict'):  # the original prefers its EMA
            if obj.get(key) is not None and not isinstance(obj[key], (int, float, str)):
                return _state_dict_of(obj[key], path)
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            return dict(obj)
    raise ValueError(f'{path}: found no state dict (expected a dict of tensors, a '
                     f"'state_dict' / 'model' entry, or a pickled YOLOv7 Model)")


def load_source_state_dict(path: str, yolov7_root: Optional[str] = None) -> Dict[str, Tensor]:
    """Read the original state dict from a file.

    Args:
        path (str): a plain state-dict file, or an official ``.pt`` with ``yolov7_root``.
        yolov7_root (str, optional): a YOLOv7 source tree to unpickle an official checkpoint
            (``weights_only=False``: the file can run code, trust it).

    Returns:
        dict[str, Tensor]: the original ``model.N.*`` state dict (EMA weights if present).
    """
    if yolov7_root is None:
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError as err:
            raise ValueError(
                f'{path} holds pickled Python objects (an official YOLOv7 .pt pickles its '
                f'Model class). If you trust the file, pass --yolov7-root /path/to/yolov7 (a '
                f'clone of WongKinYiu/yolov7) to unpickle it.') from err
        return _state_dict_of(obj, path)
    warnings.warn(f'unpickling {path} with weights_only=False: this runs code from the file; '
                  f'do it only for checkpoints you trust', UserWarning)
    with _importable(yolov7_root):
        obj = torch.load(path, map_location='cpu', weights_only=False)
        return _state_dict_of(obj, path)


def format_anchors(anchors: Sequence) -> str:
    """``anchors = [[(w, h), ...], ...]`` config line; integers when the values are whole."""

    def number(value: float) -> str:
        return str(int(round(value))) if abs(value - round(value)) < 1e-4 else f'{value:.2f}'

    levels = ['[' + ', '.join(f'({number(w)}, {number(h)})' for w, h in level) + ']'
              for level in anchors]
    return 'anchors = [' + ', '.join(levels) + ']'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official YOLOv7 checkpoint to a turtle_plugin checkpoint')
    parser.add_argument('src', help='original checkpoint: a state-dict file, or an official '
                        '.pt with --yolov7-root')
    parser.add_argument('dst', help='output MMEngine checkpoint (.pth)')
    parser.add_argument('--arch', choices=sorted(ARCH_LAYOUTS),
                        help='variant (default: inferred from the head layer index)')
    parser.add_argument('--scope', choices=sorted(HEAD_PREFIXES), default='mmpose',
                        help='mmpose: BottomupPoseEstimator (head.*); mmdet: YOLOv7Detector '
                        '(bbox_head.*)')
    parser.add_argument('--num-keypoints', type=int, default=None,
                        help='expected keypoints of an IKeypoint head (checked)')
    parser.add_argument('--yolov7-root', default=None,
                        help='YOLOv7 source tree, needed to unpickle an official .pt (runs code '
                        'from the file: trusted files only)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    try:
        source = load_source_state_dict(args.src, args.yolov7_root)
        state_dict, meta = convert_state_dict(source, args.arch, args.scope, args.num_keypoints)
    except (ValueError, KeyError, FileNotFoundError) as err:
        sys.exit(f'yolov7_to_turtle: error: {err}')
    meta.update(source=osp.basename(args.src), converter='tools/model_converters/'
                'yolov7_to_turtle.py')
    torch.save(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'YOLOv7-{meta["arch"]} ({meta["head_type"]} head, {meta["num_classes"]} classes, '
          f'{meta["num_keypoints"]} keypoints): {len(source)} tensors -> {len(state_dict)} '
          f'in {args.dst}')
    print('Anchors (w, h in input pixels, fitted by the original for its training size); '
          'paste into the config, and check them on your data with '
          'tools/analysis/check_anchors.py:')
    print(f'    {format_anchors(meta["anchors"])}')
    if meta['num_keypoints']:
        print(f'    and set head_module.num_keypoints={meta["num_keypoints"]}, kpt_dim=3, '
              f'kpt_head={meta["kpt_head"]!r}')
    if meta['fused_repconv']:
        print('The RepConv layers are re-parameterised (rbr_reparam): load the checkpoint into '
              'a model after model.neck.switch_to_deploy().')
    if not meta['num_keypoints'] and args.num_keypoints:
        print(f'The checkpoint has no keypoint branch: the {args.num_keypoints}-keypoint '
              f'branch of the model keeps its initialisation (load non-strictly).')


if __name__ == '__main__':
    main()
