"""Convert DeepLabCut / Lightning Pose labels (``CollectedData*.csv``) to YOLO keypoint labels.

    python tools/dataset_converters/dlc2yolo.py PROJECT/labeled-data/*/CollectedData_*.csv \
        --out-dir yolo/ --val-every 5 --swap paw1LH:paw4RH paw2LF:paw3RF --sigma 0.05

DeepLabCut's (and Lightning Pose's) label table has three header rows -- ``scorer``,
``bodyparts``, ``coords`` -- or four with ``individuals`` (multi-animal projects), one or three
leading index columns that give the image path relative to the project folder, and ``x``, ``y``
per body part (empty or ``NaN`` = not labelled). DeepLabCut writes one table per video; give
them all. The tables have no boxes and no visibility flags, so:

* every individual (single-animal: the one animal) is one instance; ``--views SUFFIX ...``
  splits the body parts by name suffix into one instance per view instead (mirror setups label
  ``nose_top`` and ``nose_bot`` for the two views of one animal);
* an instance's box is the box of its labelled keypoints, padded on each side by
  ``--box-pad`` times its longer side (at least ``--box-pad-px``) and clipped to the image;
  instances without a labelled keypoint are left out (counted in the summary);
* labelled keypoints are visible (``v = 2``).

Writes ``OUT/{train,val}/images`` (symlinks, or copies with ``--copy-images``),
``OUT/{train,val}/labels/*.txt``, ``OUT/data.yaml`` (``kpt_shape``, ``flip_idx``) and
``OUT/metainfo.py``, an MMPose metainfo file (keypoint names, the ``--swap`` pairs, sigmas
``--sigma`` each, ``1/K`` when omitted) for ``metainfo = dict(from_file=...)``. The split is
deterministic: with ``--val-every N`` every N-th labelled image of each table (the last of each
group of N, in the table's order) goes to ``val``. Bad input -- a row with the wrong number of cells, a value
that is not a number, a keypoint outside its image, a missing or twice-listed image -- is an
error naming the csv file and line.
"""
import argparse
import csv
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import yaml
from mmengine.logging import print_log

from turtle_plugin.datasets import YOLOLabelError
from turtle_plugin.datasets.coco_conversion import choose_kpt_dim, format_label_rows
from turtle_plugin.datasets.metainfo import default_pose_metainfo
from turtle_plugin.datasets.yolo_format import place_image, read_image_size

__all__ = ['read_dlc_table', 'DLCTable', 'dlc_to_yolo', 'instance_rows', 'parse_args', 'main']

SINGLE_INDIVIDUAL = 'single'  # DeepLabCut's name for the unique (not per-animal) body parts


class DLCTable:
    """A DeepLabCut label table, read and checked.

    Attributes:
        path (Path): the csv file.
        images (list[str]): image path of each data row, relative to the project folder.
        lines (list[int]): the csv line number of each data row (1-based).
        columns (list[tuple[str, str]]): ``(individual, bodypart)`` of each x/y column pair;
            the individual is ``''`` in a single-animal table.
        xy (np.ndarray): ``(N, C, 2)`` float64 coordinates in pixels, ``NaN`` = not labelled.
    """

    def __init__(self, path: Path, images: List[str], lines: List[int],
                 columns: List[Tuple[str, str]], xy: np.ndarray):
        self.path, self.images, self.lines, self.columns, self.xy = \
            path, images, lines, columns, xy


def read_dlc_table(path: str) -> DLCTable:
    """Read a ``CollectedData*.csv`` label table.

    Args:
        path (str): the csv file.

    Returns:
        DLCTable: the table.

    Raises:
        YOLOLabelError: naming the file and line of a malformed header or row.
    """
    path = Path(path)
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    header: Dict[str, List[str]] = {}
    for lineno, row in enumerate(rows, 1):
        if not row:
            continue
        key = row[0].strip().lower()
        if key not in ('scorer', 'individuals', 'bodyparts', 'coords'):
            raise YOLOLabelError(f'{path}:{lineno}: expected the header rows scorer, '
                                 f'[individuals,] bodyparts, coords; got {row[0]!r}')
        header[key] = row
        if key == 'coords':
            break
    else:
        raise YOLOLabelError(f'{path}: no "coords" header row: not a DeepLabCut label table')
    if 'bodyparts' not in header:
        raise YOLOLabelError(f'{path}:{lineno}: no "bodyparts" header row before "coords"')
    coords = [c.strip().lower() for c in header['coords']]
    n_index = next((i for i, c in enumerate(coords) if c in ('x', 'y')), None)
    if n_index is None:
        raise YOLOLabelError(f'{path}:{lineno}: the coords row has no x or y column')
    width = len(coords)
    columns, value_cols = [], []
    for col in range(n_index, width, 2):
        if coords[col:col + 2] != ['x', 'y']:
            raise YOLOLabelError(f'{path}:{lineno}: columns {col + 1}-{col + 2} are '
                                 f'{coords[col:col + 2]}, expected x, y pairs')
        individual = header['individuals'][col] if 'individuals' in header else ''
        columns.append((individual.strip(), header['bodyparts'][col].strip()))
        value_cols.append(col)
    images, lines, values = [], [], []
    for data_lineno, row in enumerate(rows[lineno:], lineno + 1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != width:
            raise YOLOLabelError(f'{path}:{data_lineno}: {len(row)} cells, the header has '
                                 f'{width}')
        image = '/'.join(cell.strip() for cell in row[:n_index] if cell.strip())
        if not image:
            raise YOLOLabelError(f'{path}:{data_lineno}: no image path')
        xy = np.full((len(columns), 2), np.nan)
        for i, col in enumerate(value_cols):
            for j in range(2):
                xy[i, j] = _number(row[col + j], path, data_lineno, col + j, columns[i], 'xy'[j])
        images.append(image)
        lines.append(data_lineno)
        values.append(xy)
    xy = np.stack(values) if values else np.zeros((0, len(columns), 2))
    return DLCTable(path, images, lines, columns, xy)


def _number(cell: str, path: Path, lineno: int, col: int, column: Tuple[str, str],
            coord: str) -> float:
    text = cell.strip()
    if text == '' or text.lower() == 'nan':
        return np.nan
    try:
        value = float(text)
    except ValueError:
        value = np.inf
    if not np.isfinite(value):
        name = '/'.join(c for c in column if c)
        raise YOLOLabelError(f'{path}:{lineno}: column {col + 1} ({name} {coord}) is '
                             f'{cell!r}, not a number')
    return value


def instance_layout(table: DLCTable, views: Sequence[str] = (),
                    drop: Sequence[str] = ()) -> Tuple[List[str], Dict[str, List[int]]]:
    """Keypoint names and, per instance, the table column of each keypoint.

    Args:
        table (DLCTable): the label table.
        views (Sequence[str]): body-part name suffixes; each makes an instance of the parts
            ending with it (with the suffix removed from the keypoint name).
        drop (Sequence[str]): body parts (full names, as in the table) to leave out.

    Returns:
        tuple[list[str], dict[str, list[int]]]: the K keypoint names and, per instance key,
        the K column indices (``-1`` where that instance lacks the keypoint).
    """
    unknown = sorted(set(drop) - {part for _, part in table.columns})
    if unknown:
        raise YOLOLabelError(f'{table.path}: --drop names body parts not in the table: '
                             f'{", ".join(unknown)}')
    groups: Dict[str, Dict[str, int]] = {}
    skipped_single = []
    for col, (individual, part) in enumerate(table.columns):
        if part in drop:
            continue
        if individual == SINGLE_INDIVIDUAL:
            skipped_single.append(part)
            continue
        key, name = individual, part
        if views:
            view = next((v for v in views if part.endswith(v)), None)
            if view is None:
                raise YOLOLabelError(
                    f'{table.path}: body part {part!r} ends with none of the --views '
                    f'{", ".join(views)}; leave it out with --drop {part}')
            key, name = f'{individual}{view}', part[:-len(view)]
        if name in groups.setdefault(key, {}):
            raise YOLOLabelError(f'{table.path}: body part {name!r} appears twice in '
                                 f'instance {key!r}')
        groups[key][name] = col
    if skipped_single:
        print_log(f'{table.path}: unique body parts (individual {SINGLE_INDIVIDUAL!r}) left out: '
                  f'{", ".join(skipped_single)}', logger='current', level=logging.WARNING)
    if not groups:
        raise YOLOLabelError(f'{table.path}: no body parts left to convert')
    names = list(dict.fromkeys(name for group in groups.values() for name in group))
    for key, group in groups.items():
        missing = [n for n in names if n not in group]
        if missing and views:  # views of one animal must carry the same keypoints
            raise YOLOLabelError(f'{table.path}: view {key!r} lacks body parts '
                                 f'{", ".join(missing)} that other views have')
    return names, {key: [group.get(n, -1) for n in names] for key, group in groups.items()}


def instance_rows(xy: np.ndarray, layout: Dict[str, List[int]], width: int, height: int,
                  box_pad: float = 0.1, box_pad_px: float = 4.) -> np.ndarray:
    """YOLO rows (``cls cx cy w h`` + K * ``(x, y, v)``, normalised) of one image.

    Args:
        xy (np.ndarray): ``(C, 2)`` pixel coordinates of the table row, ``NaN`` = unlabelled.
        layout (dict[str, list[int]]): per instance, the column of each keypoint
            (:func:`instance_layout`).
        width (int): image width in pixels.
        height (int): image height in pixels.
        box_pad (float): padding on each side of the keypoints' box, times its longer side.
        box_pad_px (float): the least padding, in pixels.

    Returns:
        np.ndarray: ``(N, 5 + 3K)`` rows, one per instance with a labelled keypoint.
    """
    rows = []
    for cols in layout.values():
        kpts = np.array([xy[c] if c >= 0 else (np.nan, np.nan) for c in cols], dtype=np.float64)
        labelled = ~np.isnan(kpts).any(axis=1)
        if not labelled.any():
            continue
        lo, hi = kpts[labelled].min(axis=0), kpts[labelled].max(axis=0)
        pad = max(box_pad * float((hi - lo).max()), box_pad_px)
        x0, y0 = max(lo[0] - pad, 0.), max(lo[1] - pad, 0.)
        x1, y1 = min(hi[0] + pad, width), min(hi[1] + pad, height)
        kpt_cols = np.zeros((len(cols), 3))
        kpt_cols[labelled] = np.column_stack(
            [kpts[labelled] / (width, height), np.full(labelled.sum(), 2.)])
        rows.append(np.concatenate([[0, (x0 + x1) / 2 / width, (y0 + y1) / 2 / height,
                                     (x1 - x0) / width, (y1 - y0) / height], kpt_cols.ravel()]))
    return np.array(rows, dtype=np.float64).reshape(-1, 5 + 3 * len(next(iter(layout.values()))))


def _check_inside(table: DLCTable, index: int, width: int, height: int) -> None:
    xy = table.xy[index]
    outside = ~np.isnan(xy).any(axis=1) & ((xy[:, 0] < 0) | (xy[:, 0] > width)
                                           | (xy[:, 1] < 0) | (xy[:, 1] > height))
    if outside.any():
        col = int(np.flatnonzero(outside)[0])
        name = '/'.join(c for c in table.columns[col] if c)
        raise YOLOLabelError(f'{table.path}:{table.lines[index]}: {name} at '
                             f'({xy[col, 0]:g}, {xy[col, 1]:g}) lies outside the '
                             f'{width}x{height} image {table.images[index]}')


def _flip_idx(names: Sequence[str], swaps: Sequence[str]) -> List[int]:
    flip = list(range(len(names)))
    for pair in swaps:
        left, sep, right = pair.partition(':')
        if not sep or left not in names or right not in names or left == right:
            raise YOLOLabelError(f'--swap {pair!r}: expected LEFT:RIGHT, two different keypoint '
                                 f'names among {", ".join(names)}')
        a, b = names.index(left), names.index(right)
        if flip[a] != a or flip[b] != b:
            raise YOLOLabelError(f'--swap {pair!r}: a keypoint is already swapped')
        flip[a], flip[b] = b, a
    return flip


def metainfo_text(names: Sequence[str], flip: Sequence[int], sigma: Optional[float],
                  dataset_name: str, source: str) -> str:
    """An MMPose metainfo file (``dataset_info = dict(...)``) for the converted keypoints."""
    info = default_pose_metainfo(len(names), flip, dataset_name, names=names, sigma=sigma)
    return f'# Written by tools/dataset_converters/dlc2yolo.py from {source}\n' \
           f'dataset_info = {info!r}\n'


def dlc_to_yolo(csv_files: Union[str, Sequence[str]], out_dir: str,
                project_dir: Optional[str] = None, views: Sequence[str] = (),
                drop: Sequence[str] = (), swaps: Sequence[str] = (),
                sigma: Optional[float] = None, val_every: int = 0, box_pad: float = 0.1,
                box_pad_px: float = 4., class_name: str = 'animal',
                copy_images: bool = False) -> Dict:
    """Write a YOLO keypoint dataset (labels, data yaml, metainfo) for DeepLabCut tables.

    Args:
        csv_files (str | Sequence[str]): ``CollectedData*.csv`` files (DeepLabCut writes one
            per video); they must label the same body parts.
        out_dir (str): output folder.
        project_dir (str, optional): folder the tables' image paths are relative to (the
            project folder); when omitted, the folder above the ``labeled-data`` folder a table
            sits in, else the table's folder.
        views (Sequence[str]): body-part suffixes that split an animal into one instance per
            view (:func:`instance_layout`).
        drop (Sequence[str]): body parts to leave out.
        swaps (Sequence[str]): ``LEFT:RIGHT`` keypoint pairs exchanged by a horizontal flip.
        sigma (float, optional): OKS sigma of every keypoint; ``1 / K`` when omitted.
        val_every (int): every ``val_every``-th image of each table goes to ``val``; 0 keeps
            all in ``train``.
        box_pad (float): box padding per side, times the keypoints' box's longer side.
        box_pad_px (float): the least box padding, in pixels.
        class_name (str): the one class's name.
        copy_images (bool): copy the images into ``out_dir`` instead of linking them.

    Returns:
        dict: ``keypoint_names``, ``flip_idx``, ``num_instances`` and ``num_images`` per split,
        ``empty_instances``, ``kpt_dim``, ``data_yaml`` and ``metainfo``.
    """
    csv_files = [csv_files] if isinstance(csv_files, (str, Path)) else list(csv_files)
    if not csv_files:
        raise YOLOLabelError('no label table given')
    splits: Dict[str, List[Tuple[Path, str, np.ndarray]]] = {'train': [], 'val': []}
    empty, names, targets = 0, None, {}
    for csv_file in csv_files:
        table = read_dlc_table(csv_file)
        project = Path(project_dir) if project_dir else _project_of(table.path)
        table_names, layout = instance_layout(table, views, drop)
        if names is None:
            names = table_names
        elif table_names != names:
            raise YOLOLabelError(f'{table.path} labels {", ".join(table_names)}; '
                                 f'{csv_files[0]} labels {", ".join(names)}')
        for index, image in enumerate(table.images):
            where = f'{table.path}:{table.lines[index]}'
            img_path = project / image
            if not img_path.is_file():
                raise YOLOLabelError(f'{where}: image {img_path} does not exist (image paths '
                                     f'are relative to {project}; see --project-dir)')
            # labeled-data/<video>/img001.png -> <video>_img001.png
            stem = '_'.join(p for p in Path(image).parts if p != 'labeled-data')
            if stem in targets:
                raise YOLOLabelError(f'{where}: image {image} is also listed at '
                                     f'{targets[stem]}')
            targets[stem] = where
            width, height = read_image_size(img_path)
            _check_inside(table, index, width, height)
            rows = instance_rows(table.xy[index], layout, width, height, box_pad, box_pad_px)
            empty += len(layout) - len(rows)
            split = 'val' if val_every and (index + 1) % val_every == 0 else 'train'
            splits[split].append((img_path, stem, rows))
    flip = _flip_idx(names, swaps)
    all_rows = np.concatenate([rows for items in splits.values() for _, _, rows in items]
                              + [np.zeros((0, 5 + 3 * len(names)))])
    kpt_dim = choose_kpt_dim(all_rows)
    out = Path(out_dir)
    result = dict(keypoint_names=names, flip_idx=flip, empty_instances=empty, kpt_dim=kpt_dim,
                  num_images={}, num_instances={})
    for split, items in splits.items():
        if not items:
            continue
        for img_path, stem, rows in items:
            label = out / split / 'labels' / Path(stem).with_suffix('.txt')
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(format_label_rows(rows, kpt_dim))
            place_image(img_path, out / split / 'images' / stem, link=not copy_images)
        result['num_images'][split] = len(items)
        result['num_instances'][split] = sum(len(rows) for _, _, rows in items)
    data = dict(path=str(out.resolve()), **{s: f'{s}/images' for s in result['num_images']},
                kpt_shape=[len(names), kpt_dim], flip_idx=flip, names={0: class_name},
                kpt_names={0: list(names)})  # Ultralytics' form: the names of each class
    result['data_yaml'] = out / 'data.yaml'
    result['data_yaml'].write_text(yaml.safe_dump(data, sort_keys=False))
    result['metainfo'] = out / 'metainfo.py'
    result['metainfo'].write_text(metainfo_text(
        names, flip, sigma, out.resolve().name or 'dlc', ', '.join(str(f) for f in csv_files)))
    return result


def _project_of(csv_path: Path) -> Path:
    """The folder above the ``labeled-data`` folder the table sits in, else its own folder."""
    for parent in csv_path.resolve().parents:
        if parent.name == 'labeled-data':
            return parent.parent
    return csv_path.parent


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('csv_files', nargs='+',
                        help='CollectedData*.csv label tables (one per video in DeepLabCut)')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--project-dir', help="folder the tables' image paths are relative to "
                        "(default: the folder above a table's labeled-data folder, else the "
                        "table's folder)")
    parser.add_argument('--views', nargs='+', default=[], metavar='SUFFIX',
                        help='body-part suffixes, one instance per view (e.g. _top _bot)')
    parser.add_argument('--drop', nargs='+', default=[], metavar='PART',
                        help='body parts to leave out')
    parser.add_argument('--swap', nargs='+', default=[], metavar='LEFT:RIGHT',
                        help='keypoint pairs exchanged by a horizontal flip')
    parser.add_argument('--sigma', type=float, help='OKS sigma of every keypoint (default 1/K)')
    parser.add_argument('--val-every', type=int, default=0,
                        help='every N-th image to val (default: all train)')
    parser.add_argument('--box-pad', type=float, default=0.1,
                        help="box padding per side, times the keypoints' box's longer side")
    parser.add_argument('--box-pad-px', type=float, default=4., help='least box padding (px)')
    parser.add_argument('--class-name', default='animal')
    parser.add_argument('--copy-images', action='store_true',
                        help='copy the images into OUT (default: symlinks)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    result = dlc_to_yolo(args.csv_files, args.out_dir, args.project_dir, args.views, args.drop,
                         args.swap, args.sigma, args.val_every, args.box_pad, args.box_pad_px,
                         args.class_name, args.copy_images)
    splits = ', '.join(f'{split}: {n} images, {result["num_instances"][split]} instances'
                       for split, n in result['num_images'].items())
    print(f'{len(result["keypoint_names"])} keypoints ({", ".join(result["keypoint_names"])}); '
          f'{splits}; {result["empty_instances"]} instances without a labelled keypoint left '
          f'out; wrote {result["data_yaml"]} and {result["metainfo"]}')


if __name__ == '__main__':
    main()
