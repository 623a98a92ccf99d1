"""tools/browse_dataset.py writes drawn, augmented samples."""
import cv2
import numpy as np

from conftest import REPO, load_tool

TIGER_SAMPLE = REPO / 'data' / 'tiger_sample'
TIGER_META = REPO / 'configs' / '_base_' / 'datasets' / 'tiger.py'

CONFIG = f'''
default_scope = 'mmpose'
custom_imports = dict(imports=['turtle_plugin'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(
    type='YOLOKptDataset', data_root='{TIGER_SAMPLE}', data_yaml='tiger.yaml', use_cache=False,
    metainfo=dict(from_file='{TIGER_META}'),
    pipeline=[dict(type='LoadImage'),
              dict(type='KptMosaic', img_scale=(160, 160), pre_transform=[dict(type='LoadImage')]),
              dict(type='KptRandomAffine', border=(-80, -80)),
              dict(type='mmpose.GenerateTarget',
                   encoder=dict(type='mmpose.YOLOXPoseAnnotationProcessor')),
              dict(type='mmpose.PackPoseInputs')]))
'''


def test_browse_writes_drawn_samples(tmp_path):
    config = tmp_path / 'cfg.py'
    config.write_text(CONFIG)
    tool = load_tool('browse_dataset.py')
    tool.main([str(config), '--output-dir', str(tmp_path / 'out'), '--num', '3', '--ext', 'png'])
    files = sorted((tmp_path / 'out').glob('*.png'))
    assert [f.name for f in files] == ['train_0000.png', 'train_0001.png', 'train_0002.png']
    assert cv2.imread(str(files[0])).shape == (160, 160, 3)


def test_draw_sample_marks_boxes_and_visible_keypoints_only():
    tool = load_tool('browse_dataset.py')
    img = np.zeros((40, 40, 3), np.uint8)
    arrays = dict(bboxes=np.array([[5., 5., 30., 30.]]),
                  keypoints=np.array([[[10., 10.], [20., 20.]]]),
                  keypoints_visible=np.array([[1., 0.]]))
    out = tool.draw_sample(img, arrays, skeleton=[(0, 1)])
    assert (out[5, 15] == (0, 255, 0)).all()  # box edge
    assert (out[10, 10] == (0, 0, 255)).all()  # visible keypoint
    assert (out[20, 20] == 0).all() and (out[15, 15] == 0).all()  # hidden: no dot, no link
