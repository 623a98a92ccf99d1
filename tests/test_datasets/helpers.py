"""Shared paths and tiny on-disk YOLO datasets for the dataset tests."""
from pathlib import Path
from typing import Dict, Optional

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
# everything a test reads lives in the repository (a clone has nothing beside it)
MMPOSE_TESTDATA = REPO / 'tests' / 'data' / 'mmpose_testdata'
TIGER_SAMPLE = REPO / 'data' / 'tiger_sample'
TURTLE_META = str(REPO / 'configs' / '_base_' / 'datasets' / 'turtle.py')
TIGER_META = str(REPO / 'configs' / '_base_' / 'datasets' / 'tiger.py')


def write_image(path: Path, width: int = 64, height: int = 48, seed: int = 0) -> Path:
    """A random-noise JPEG (or PNG, by suffix) of the given size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def make_split(root: Path, labels: Dict[str, Optional[str]], split: str = 'train',
               width: int = 64, height: int = 48) -> Path:
    """``root/split/images/<name>.jpg`` for every name, with ``labels/<name>.txt`` holding the
    given text (None: no label file). Returns the images folder."""
    for i, (name, text) in enumerate(labels.items()):
        write_image(root / split / 'images' / f'{name}.jpg', width, height, seed=i)
        if text is not None:
            label = root / split / 'labels' / f'{name}.txt'
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(text)
    return root / split / 'images'


def write_yaml(root: Path, body: str, name: str = 'data.yaml') -> Path:
    path = root / name
    path.write_text(body)
    return path


def turtle_row(cls: int = 0, box=(0.5, 0.5, 0.5, 0.5), kpts=None, dim: int = 2) -> str:
    """A label row with 6 keypoints (default: all labelled at (0.25 + 0.1 i, 0.5))."""
    if kpts is None:
        kpts = [(0.25 + 0.1 * i, 0.5, 2) for i in range(6)]
    values = [str(cls)] + [repr(v) for v in box]
    for x, y, v in kpts:
        values += [repr(x), repr(y)] + ([str(v)] if dim == 3 else [])
    return ' '.join(values)


TURTLE_YAML = 'train: train\nval: train\nkpt_shape: [6, 2]\nnames: [turtle]\n'
