"""Reading YOLO keypoint datasets: data yaml, image lists, label files, image headers, cache.

Layout (YOLOv7 / Ultralytics): a data yaml names the split sources (folders, ``.txt`` lists or
lists of those), the class ``names`` and, for Ultralytics, ``kpt_shape: [K, 2 | 3]`` and
``flip_idx``. Every image ``.../images/x.jpg`` has a label file ``.../labels/x.txt`` with one row
per object: ``cls cx cy w h`` then ``K`` keypoints as ``x y`` or ``x y v``, all normalised to
[0, 1]. See ``docs/data.md`` for what is an error and what is a logged skip.
"""
import hashlib
import logging
import json
import math
import os
import os.path as osp
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import yaml
from mmengine.logging import print_log
from PIL import Image

__all__ = [
    'IMG_EXTENSIONS', 'YOLOLabelError', 'UnreadableImageError', 'DataYaml', 'read_data_yaml',
    'read_kpt_names',
    'list_images', 'label_path_for', 'place_image', 'read_image_size', 'parse_label_file',
    'LabelSpec', 'scan_labels', 'default_cache_file', 'split_sources'
]

IMG_EXTENSIONS = ('.bmp', '.dng', '.jpeg', '.jpg', '.mpo', '.png', '.tif', '.tiff', '.webp')
CACHE_VERSION = 1
_EXIF_ORIENTATION = 0x0112


class YOLOLabelError(ValueError):
    """A label file, data yaml or annotation that cannot be read; the message names the place."""


class UnreadableImageError(OSError):
    """An image that is missing, not an image, or truncated."""


class DataYaml(dict):
    """Parsed data yaml: ``root`` (Path), ``names`` (list[str]), ``kpt_shape`` (tuple | None),
    ``flip_idx`` (list | None), ``kpt_names`` (list[str] | None), ``splits`` (dict of raw split
    entries), ``path`` (the yaml)."""


def read_data_yaml(path: Union[str, Path]) -> DataYaml:
    """Read a YOLOv7 or Ultralytics data yaml.

    ``names`` may be a list or a ``{index: name}`` dict; ``nc``, when present, must agree with
    it. The dataset root is the ``path`` entry (relative to the yaml's folder) or the yaml's
    folder. ``kpt_names`` (keypoint names) may be Ultralytics' ``{class index: [K names]}`` or
    one list of K names; see :func:`read_kpt_names`.

    Args:
        path (str | Path): the yaml file.

    Returns:
        DataYaml: the parsed entries.

    Raises:
        YOLOLabelError: missing file, unreadable yaml, or inconsistent ``names``/``nc``/
            ``kpt_shape``/``flip_idx``.
    """
    path = Path(path)
    if not path.is_file():
        raise YOLOLabelError(f'data yaml {path} does not exist')
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise YOLOLabelError(f'data yaml {path} is not valid yaml: {err}') from err
    if not isinstance(raw, dict):
        raise YOLOLabelError(f'data yaml {path} must be a mapping, got {type(raw).__name__}')
    names = raw.get('names')
    if isinstance(names, dict):
        keys = sorted(int(k) for k in names)
        if keys != list(range(len(keys))):
            raise YOLOLabelError(f'data yaml {path}: names keys must be 0..{len(keys) - 1}, '
                                 f'got {keys}')
        names = [str(names[k]) for k in keys]
    elif isinstance(names, (list, tuple)):
        names = [str(n) for n in names]
    elif names is None and 'nc' in raw:
        names = [f'class_{i}' for i in range(int(raw['nc']))]
    else:
        raise YOLOLabelError(f'data yaml {path}: "names" (list or dict of class names) missing')
    if 'nc' in raw and int(raw['nc']) != len(names):
        raise YOLOLabelError(f'data yaml {path}: nc is {raw["nc"]} but names lists '
                             f'{len(names)} classes')
    kpt_shape = raw.get('kpt_shape')
    if kpt_shape is not None:
        if (not isinstance(kpt_shape, (list, tuple)) or len(kpt_shape) != 2
                or int(kpt_shape[1]) not in (2, 3) or int(kpt_shape[0]) < 1):
            raise YOLOLabelError(f'data yaml {path}: kpt_shape must be [K, 2] or [K, 3], got '
                                 f'{kpt_shape}')
        kpt_shape = (int(kpt_shape[0]), int(kpt_shape[1]))
    flip_idx = raw.get('flip_idx')
    if flip_idx is not None and kpt_shape is not None and len(flip_idx) != kpt_shape[0]:
        raise YOLOLabelError(f'data yaml {path}: flip_idx has {len(flip_idx)} entries but '
                             f'kpt_shape says {kpt_shape[0]} keypoints')
    kpt_names = read_kpt_names(raw.get('kpt_names'), names, kpt_shape, path)
    root = Path(raw['path']) if raw.get('path') else Path('.')
    if not root.is_absolute():
        root = path.parent / root
    splits = {k: raw[k] for k in ('train', 'val', 'test') if raw.get(k)}
    return DataYaml(root=root, names=names, kpt_shape=kpt_shape,
                    flip_idx=None if flip_idx is None else [int(i) for i in flip_idx],
                    kpt_names=kpt_names, splits=splits, path=path)


def read_kpt_names(raw, names: List[str], kpt_shape: Optional[Tuple[int, int]],
                    path: Path) -> Optional[List[str]]:
    """The keypoint names of a data yaml's ``kpt_names``, or None when it has none.

    Ultralytics writes ``kpt_names: {class index: [K names]}`` (one list per class);
    ``dlc2yolo.py`` before it wrote one list of K names, which is read too. One metainfo names
    the keypoints of every class, so the classes' lists must be the same: a yaml naming them
    differently per class is an error, as is a list whose length is not ``kpt_shape``'s K, a
    class index not in ``names``, or a name that is empty, not a string or an integer (read as
    its digits), or repeated. An empty ``kpt_names`` is read as none (as Ultralytics reads it).
    """
    if raw is None or (isinstance(raw, (dict, list, tuple)) and not raw):
        return None  # absent or empty: unnamed, as Ultralytics reads it
    where = f'data yaml {path}: kpt_names'
    if isinstance(raw, dict):
        lists = {}
        for key, value in raw.items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                index = -1
            if not 0 <= index < len(names):
                raise YOLOLabelError(f'{where} is keyed by class index (0..{len(names) - 1} '
                                     f'for names {names}), got key {key!r}')
            lists[index] = value
    elif isinstance(raw, (list, tuple)):
        lists = {None: raw}
    else:
        raise YOLOLabelError(f'{where} must be {{class index: [names]}} or a list of names, '
                             f'got {type(raw).__name__}')
    checked = {}
    for index, value in lists.items():
        at = where if index is None else f'{where}[{index}]'
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(n, (str, int)) and not isinstance(n, bool) and str(n).strip()
                for n in value):  # numbers name keypoints as their digits, as Ultralytics'
            raise YOLOLabelError(f'{at} must be a list of keypoint names, got {value!r}')
        value = [str(n) for n in value]
        if kpt_shape is not None and len(value) != kpt_shape[0]:
            raise YOLOLabelError(f'{at} has {len(value)} names but kpt_shape says '
                                 f'{kpt_shape[0]} keypoints')
        if len(set(value)) != len(value):
            repeated = sorted({n for n in value if value.count(n) > 1})
            raise YOLOLabelError(f'{at} repeats {repeated}: each keypoint needs its own name')
        checked[index] = value
    first_index, first = next(iter(checked.items()))
    for index, value in checked.items():
        if value != first:
            raise YOLOLabelError(
                f'{where} names the keypoints of class {index} ({names[index]}) {value} but '
                f'those of class {first_index} ({names[first_index]}) {first}: one metainfo names '
                f'the keypoints of every class; give one list, or a metainfo file')
    return first


def _resolve(entry: str, data: DataYaml) -> Path:
    """Split entry relative to the dataset root, or to the working directory (YOLOv7 style)."""
    entry_path = Path(entry)
    if entry_path.is_absolute():
        candidates = [entry_path]
    else:
        candidates = [data['root'] / entry_path, Path.cwd() / entry_path]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    tried = ', '.join(str(c) for c in dict.fromkeys(candidates))
    raise YOLOLabelError(f'data yaml {data["path"]}: split entry {entry!r} points to a missing '
                         f'folder or file (tried {tried})')


def split_sources(data: DataYaml, split: str) -> List[Path]:
    """Existing folders / list files of a split of a data yaml.

    Raises:
        YOLOLabelError: the split is absent or one of its entries does not exist.
    """
    if split not in data['splits']:
        raise YOLOLabelError(f'data yaml {data["path"]} has no {split!r} split (has '
                             f'{sorted(data["splits"])})')
    entries = data['splits'][split]
    entries = entries if isinstance(entries, (list, tuple)) else [entries]
    return [_resolve(str(e), data) for e in entries]


def list_images(sources: Sequence[Union[str, Path]]) -> List[Path]:
    """Sorted, de-duplicated image paths of folders (searched recursively) and ``.txt`` lists.

    Relative lines of a list file are relative to the list file's folder.

    Raises:
        YOLOLabelError: a source does not exist.
    """
    images = []
    for source in map(Path, sources):
        if source.is_dir():
            images += [p for p in source.rglob('*') if p.suffix.lower() in IMG_EXTENSIONS]
        elif source.is_file():
            for line in source.read_text().splitlines():
                line = line.strip()
                if line:
                    p = Path(line)
                    images.append(p if p.is_absolute() else source.parent / p)
        else:
            raise YOLOLabelError(f'image source {source} does not exist')
    return sorted({Path(osp.normpath(p)) for p in images}, key=str)


def label_path_for(img_path: Path, img_root: Optional[Path] = None,
                   label_root: Optional[Path] = None) -> Path:
    """Label file of an image.

    With ``label_root``: the image's path relative to ``img_root`` under ``label_root``.
    Otherwise the YOLO sibling rule: the last ``images`` folder of the path becomes ``labels``
    (no ``images`` folder: the label sits next to the image). The suffix becomes ``.txt``.
    """
    img_path = Path(img_path)
    if label_root is not None:
        return (Path(label_root) / img_path.relative_to(img_root)).with_suffix('.txt')
    parts = list(img_path.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == 'images':
            parts[i] = 'labels'
            break
    return Path(*parts).with_suffix('.txt')


def place_image(src: Path, dst: Path, link: bool) -> None:
    """Put an image into a converted dataset: ``dst`` becomes a symlink to ``src`` (absolute)
    or a copy of it, replacing what was there."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if link:
        os.symlink(os.path.abspath(src), dst)
    else:
        shutil.copy2(src, dst)


def read_image_size(path: Union[str, Path]) -> Tuple[int, int]:
    """``(width, height)`` of an image from its header, EXIF rotation applied, without decoding.

    JPEG files must end with the end-of-image marker and PNG files with the IEND chunk, so
    truncated files are caught here rather than in the data loader.

    Raises:
        UnreadableImageError: missing, not an image, or truncated.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            image_format = img.format
            # EXIF sits in the header of these formats; PNG would need a full read to find it
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1) \
                if image_format in ('JPEG', 'MPO', 'TIFF') else 1
    except FileNotFoundError as err:
        raise UnreadableImageError(f'{path}: image file not found') from err
    except (OSError, SyntaxError, ValueError) as err:
        raise UnreadableImageError(f'{path}: not a readable image ({err})') from err
    tails = {'JPEG': (b'\xff\xd9', 2), 'PNG': (b'IEND\xaeB`\x82', 8)}
    if image_format in tails:
        marker, size = tails[image_format]
        with open(path, 'rb') as f:
            f.seek(-min(size, path.stat().st_size), os.SEEK_END)
            if f.read() != marker:
                raise UnreadableImageError(f'{path}: truncated {image_format} file (no end marker)')
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees: decoders swap the sides
        width, height = height, width
    return width, height


class LabelSpec(dict):
    """What a label row must look like.

    Args:
        num_keypoints (int): K (0 for plain detection labels).
        num_classes (int): number of classes; class ids must be below it.
        kpt_dim (int | None): 2 (``x y``), 3 (``x y v``) or None (accept both).
        tolerance (float): how far normalised values may leave [0, 1].
    """

    def __init__(self, num_keypoints: int, num_classes: int, kpt_dim: Optional[int] = None,
                 tolerance: float = 0.01):
        if kpt_dim not in (None, 2, 3):
            raise ValueError(f'kpt_dim must be 2, 3 or None, got {kpt_dim}')
        super().__init__(num_keypoints=int(num_keypoints), num_classes=int(num_classes),
                         kpt_dim=kpt_dim, tolerance=float(tolerance))


def _row_error(path, lineno, message):
    return YOLOLabelError(f'{path}:{lineno}: {message}')


def _parse_row(tokens: List[str], path: Path, lineno: int, spec: LabelSpec) -> np.ndarray:
    """One label row as ``cls cx cy w h`` + K * ``(x, y, v)`` (float64)."""
    k, tol = spec['num_keypoints'], spec['tolerance']
    dims = (spec['kpt_dim'], ) if spec['kpt_dim'] else (2, 3)
    allowed = sorted({5 + k * d for d in dims})
    if len(tokens) not in allowed:
        layout = ' or '.join(f'{n} (cls cx cy w h + {k} x {d} keypoint values)'
                             for n, d in zip(allowed, sorted(set(dims))))
        raise _row_error(path, lineno, f'{len(tokens)} columns, expected {layout}')
    values = []
    for col, token in enumerate(tokens):
        try:
            values.append(float(token))
        except ValueError:
            raise _row_error(path, lineno, f'column {col + 1} is not a number: {token!r}')
    values = np.array(values, dtype=np.float64)
    if not np.isfinite(values).all():
        col = int(np.flatnonzero(~np.isfinite(values))[0])
        raise _row_error(path, lineno, f'column {col + 1} is {tokens[col]} (NaN or infinite)')
    cls = values[0]
    if cls != math.floor(cls) or not 0 <= cls < spec['num_classes']:
        raise _row_error(path, lineno, f'class id {tokens[0]} is not an integer in '
                         f'[0, {spec["num_classes"] - 1}] ({spec["num_classes"]} classes)')
    dim = (len(tokens) - 5) // k if k else 2
    kpts = values[5:].reshape(k, dim)
    coords = np.concatenate([values[1:5], kpts[:, :2].ravel()])
    outside = (coords < -tol) | (coords > 1 + tol)
    if outside.any():
        col = int(np.flatnonzero(outside)[0])
        col = col + 1 if col < 4 else 5 + (col - 4) // 2 * dim + (col - 4) % 2
        raise _row_error(path, lineno, f'column {col + 1} = {tokens[col]} is outside [0, 1] '
                         f'(normalised coordinates, tolerance {tol})')
    if dim == 3:
        vis = kpts[:, 2].copy()
        if not np.isin(vis, (0, 1, 2)).all():
            raise _row_error(path, lineno, f'keypoint visibility must be 0, 1 or 2, got '
                             f'{sorted(set(vis.tolist()) - {0., 1., 2.})}')
    else:
        vis = np.full(k, 2.)
    vis[(kpts[:, 0] == 0) & (kpts[:, 1] == 0)] = 0  # (0, 0) marks an unlabelled keypoint
    return np.concatenate([values[:5], np.column_stack([kpts[:, :2], vis]).ravel()])


def parse_label_file(path: Union[str, Path], spec: LabelSpec) -> Tuple[np.ndarray, List[str]]:
    """Parse and check one YOLO label file.

    Args:
        path (str | Path): the label file.
        spec (LabelSpec): expected row layout.

    Returns:
        tuple[np.ndarray, list[str]]: ``(N, 5 + 3K)`` float64 rows ``cls cx cy w h`` then
        ``(x, y, v)`` per keypoint (``v`` is 2 for labelled keypoints of ``x y`` files and 0 for
        ``(0, 0)`` ones), and warnings (degenerate boxes skipped, duplicate rows removed).

    Raises:
        YOLOLabelError: naming the file and line, for a wrong column count, a non-numeric,
            NaN or infinite value, a class id out of range or a coordinate outside [0, 1].
    """
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise YOLOLabelError(f'{path}: not a text file ({err})') from err
    rows, warnings = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        row = _parse_row(tokens, path, lineno, spec)
        if row[3] <= 0 or row[4] <= 0:
            warnings.append(f'{path}:{lineno}: degenerate box (w={tokens[3]}, h={tokens[4]}), '
                            'row skipped')
            continue
        rows.append(row)
    width = 5 + 3 * spec['num_keypoints']
    array = np.array(rows, dtype=np.float64).reshape(-1, width)
    if len(array) > 1:
        _, first = np.unique(array, axis=0, return_index=True)
        if len(first) < len(array):
            warnings.append(f'{path}: {len(array) - len(first)} duplicate row(s) removed')
            array = array[np.sort(first)]
    return array, warnings


def _stat(path: Path) -> Optional[List[int]]:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


def default_cache_file(label_paths: Sequence[Path], cache_dir: Optional[str] = None,
                       split_key: str = '') -> Optional[Path]:
    """Where the parsed labels of a split are cached.

    Next to the first label folder (``labels.<split_key>.turtle_cache.json``), or in
    ``cache_dir`` under a name derived from that folder and ``split_key``.
    """
    if not label_paths:
        return None
    label_dir = Path(label_paths[0]).parent
    if cache_dir is None:
        infix = f'.{split_key}' if split_key else ''
        return label_dir.parent / f'{label_dir.name}{infix}.turtle_cache.json'
    digest = hashlib.sha1(f'{label_dir.resolve()}|{split_key}'.encode()).hexdigest()[:16]
    return Path(cache_dir) / f'labels_{digest}.turtle_cache.json'


def _load_cache(cache_file: Optional[Path], signature: Dict) -> Dict:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}
    if cache.get('signature') != signature:
        return {}
    return cache.get('entries', {})


def _save_cache(cache_file: Optional[Path], signature: Dict, entries: Dict) -> None:
    if cache_file is None:
        return
    tmp = cache_file.with_name(cache_file.name + f'.{os.getpid()}.tmp')
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(dict(signature=signature, entries=entries)))
        os.replace(tmp, cache_file)  # atomic: concurrent readers see old or new, never half
    except OSError as err:
        print_log(f'label cache not written to {cache_file} ({err}); labels are parsed on every '
                  'start', logger='current')
        if tmp.exists():
            tmp.unlink()


def scan_labels(img_paths: Sequence[Path], label_paths: Sequence[Path], spec: LabelSpec,
                cache_file: Optional[Path] = None) -> Tuple[List[Dict], Dict[str, List[str]]]:
    """Image sizes and parsed labels of a split, cached by file path, mtime and size.

    Images that cannot be read are skipped and logged; images without a label file are kept as
    images without objects and logged; an empty label file means no objects.

    Args:
        img_paths (Sequence[Path]): images, in dataset order.
        label_paths (Sequence[Path]): their label files.
        spec (LabelSpec): expected row layout.
        cache_file (Path, optional): cache location; None disables caching.

    Returns:
        tuple[list[dict], dict]: per readable image ``img_path``, ``label_path``, ``width``,
        ``height``, ``rows`` (``(N, 5 + 3K)`` array, see :func:`parse_label_file`) and
        ``index`` (position in ``img_paths``); and the logged report: ``skipped`` images,
        ``missing_labels`` and label ``warnings``.

    Raises:
        YOLOLabelError: a label file with a bad row (see :func:`parse_label_file`).
    """
    signature = dict(version=CACHE_VERSION, **spec)
    cached = _load_cache(cache_file, signature)
    entries, records, changed = {}, [], False
    missing_labels, skipped, notes = [], [], []
    for index, (img_path, label_path) in enumerate(zip(img_paths, label_paths)):
        key = str(img_path)
        img_stat, label_stat = _stat(img_path), _stat(label_path)
        entry = cached.get(key)
        if (entry is None or entry['img_stat'] != img_stat or entry['label_stat'] != label_stat
                or entry['label'] != str(label_path)):
            entry = _scan_one(img_path, label_path, img_stat, label_stat, spec)
            changed = True
        entries[key] = entry
        if entry['skip']:
            skipped.append(entry['skip'])
            continue
        if label_stat is None:
            missing_labels.append(str(label_path))
        notes += entry['warnings']
        rows = np.array(entry['rows'], dtype=np.float64).reshape(-1, 5 + 3 * spec['num_keypoints'])
        records.append(dict(img_path=key, label_path=str(label_path), width=entry['size'][0],
                            height=entry['size'][1], rows=rows, index=index))
    if changed or set(entries) != set(cached):
        _save_cache(cache_file, signature, entries)
    report = dict(skipped=skipped, missing_labels=missing_labels, warnings=notes)
    _log_report(report)
    return records, report


def _scan_one(img_path: Path, label_path: Path, img_stat, label_stat, spec: LabelSpec) -> Dict:
    entry = dict(img_stat=img_stat, label_stat=label_stat, label=str(label_path), size=None,
                 skip=None, rows=[], warnings=[])
    try:
        entry['size'] = list(read_image_size(img_path))
    except UnreadableImageError as err:
        entry['skip'] = f'{err}; image skipped'
        return entry
    if label_stat is not None:
        rows, entry['warnings'] = parse_label_file(label_path, spec)
        entry['rows'] = rows.tolist()
    return entry


def _log_report(report: Dict[str, List[str]]) -> None:
    """Log skipped images, images without labels and label warnings (a few of each)."""
    for title, items in (('images skipped', report['skipped']),
                         ('images without a label file (kept, no objects)',
                          report['missing_labels']), ('label warnings', report['warnings'])):
        if items:
            shown = '\n  '.join(items[:10])
            more = f'\n  ... and {len(items) - 10} more' if len(items) > 10 else ''
            print_log(f'{len(items)} {title}:\n  {shown}{more}', logger='current',
                      level=logging.WARNING)
