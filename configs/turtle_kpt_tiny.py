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
custom_hooks = [
    # as YOLOv7's train.py: refit the anchors by k-means when they fit the data badly (BPR < 0.98)
    dict(type='AutoAnchorHook'),
    # seed each epoch from (seed, epoch, rank), so --resume continues exactly
    dict(type='EpochSeedHook'),
    dict(type='YOLOv7ParamSchedulerHook', scheduler_type='cosine', lr_factor=0.01,
         warmup_epochs=3, min_warmup_iters=1000, warmup_bias_lr=0.1, warmup_momentum=0.8),
    dict(type='EMAHook', ema_type='mmdet.ExpMomentumEMA', momentum=0.0001, gamma=2000,
         update_buffers=True, priority=49),
    dict(type='CloseMosaicHook', num_last_epochs={{_base_.close_mosaic_epochs}},
         new_train_pipeline={{_base_.train_pipeline_stage2}}),
]
