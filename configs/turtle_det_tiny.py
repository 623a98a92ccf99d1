# YOLOv7-tiny variant of turtle_det.py, with hyp.scratch.tiny's loss gains and final lr.
_base_ = './turtle_det.py'

model = dict(
    backbone=dict(arch='tiny'),
    neck=dict(arch='tiny'),
    bbox_head=dict(
        head_module=dict(in_channels=[128, 256, 512]),
        loss_obj=dict(loss_weight=1.0),
        loss_cls=dict(loss_weight=0.5)))
default_hooks = dict(param_scheduler=dict(lr_factor=0.01))
