# YOLOv7-tiny variant of turtle_kpt.py (LeakyReLU, 6.0 M parameters), with the loss gains and
# final lr of the original's hyp.scratch.tiny (its augmentation settings are not changed here).
_base_ = './turtle_kpt.py'

model = dict(
    backbone=dict(arch='tiny'),
    neck=dict(arch='tiny'),
    head=dict(
        head_module=dict(in_channels=[128, 256, 512]),
        loss_obj=dict(loss_weight=1.0),
        loss_cls=dict(loss_weight=0.5)))
default_hooks = dict(param_scheduler=dict(lr_factor=0.01))
