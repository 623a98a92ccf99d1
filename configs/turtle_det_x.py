# YOLOv7-x variant of turtle_det.py.
_base_ = './turtle_det.py'

model = dict(
    backbone=dict(arch='x'),
    neck=dict(arch='x'),
    bbox_head=dict(head_module=dict(in_channels=[320, 640, 1280])))
