# YOLOv7-x variant of turtle_kpt.py (70.8 M parameters in the detector).
_base_ = './turtle_kpt.py'

model = dict(
    backbone=dict(arch='x'),
    neck=dict(arch='x'),
    head=dict(head_module=dict(in_channels=[320, 640, 1280])))
