"""Low-level YOLO reading: label paths, image headers (EXIF), list files."""
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from turtle_plugin.datasets import list_images, read_image_size
from turtle_plugin.datasets.yolo_format import label_path_for


def test_label_path_rules():
    assert label_path_for(Path('/d/images/train/x.jpg')) == Path('/d/labels/train/x.txt')
    # only the last `images` folder is renamed
    assert label_path_for(Path('/images/a/images/x.png')) == Path('/images/a/labels/x.txt')
    assert label_path_for(Path('/d/pics/x.jpg')) == Path('/d/pics/x.txt')
    assert label_path_for(Path('/d/img/sub/x.jpg'), Path('/d/img'),
                          Path('/l')) == Path('/l/sub/x.txt')


def test_exif_rotation_swaps_the_size_like_the_decoder(tmp_path):
    path = tmp_path / 'rotated.jpg'
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(path, exif=exif)
    assert read_image_size(path) == (20, 40)
    assert cv2.imread(str(path)).shape[:2] == (40, 20)  # OpenCV applies the rotation too


def test_list_images_from_folders_and_list_files(tmp_path):
    for name in ('b.jpg', 'a.PNG', 'sub/c.jpeg', 'notes.txt'):
        (tmp_path / 'imgs' / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'imgs' / name).write_bytes(b'')
    (tmp_path / 'list.txt').write_text('imgs/b.jpg\n\n./imgs/b.jpg\n')
    found = list_images([tmp_path / 'imgs', tmp_path / 'list.txt'])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        'imgs/a.PNG', 'imgs/b.jpg', 'imgs/sub/c.jpeg']
