# YOLOv7's hyp.scratch.p5 training schedule, for detection and keypoint configs alike: SGD lr
# 0.01, momentum 0.937, nesterov, weight decay 5e-4 on conv weights only scaled to a nominal
# batch of 64, 3 warm-up epochs (bias lr from 0.1, momentum from 0.8), cosine decay to 0.1x, EMA
# weights for evaluation, the mosaic closed for the last epochs, anchors refitted at train start.
# A variant tunes a hook by its key, e.g. hyp.scratch.tiny's final lr:
#   default_hooks = dict(param_scheduler=dict(lr_factor=0.01))
# It sits on the runtime: MMEngine lets only one base of a config set default_hooks.
_base_ = '../default_runtime.py'

# ----------------------------------------------------------------- frequently modified
max_epochs = 300
close_mosaic_epochs = 15  # train the last epochs without mosaic / mixup
val_interval = 10
base_lr = 0.01
# ------------------------------------------------------------------------------------

train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=val_interval,
    dynamic_intervals=[(max_epochs - close_mosaic_epochs, 1)])
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# SGD, nesterov, weight decay on conv weights only, scaled to the nominal batch of 64 as YOLOv7,
# no gradient clipping (as YOLOv7; clipping would also cost a host sync per step).
# (YOLOv7 accumulates gradients up to 64 images; MMEngine's accumulation averages instead of
# summing, so the plugin steps every batch with the weight decay scaled by batch / 64.)
# The batch is the train dataloader's, read at train start (YOLOv7ParamSchedulerHook): total
# batch = train_dataloader.batch_size x GPUs, so weight_decay here is the decay at 64 images.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='YOLOv7OptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=base_lr, momentum=0.937, nesterov=True, weight_decay=5e-4),
    paramwise_cfg=dict(base_total_batch_size=64))
param_scheduler = None  # default_hooks.param_scheduler is YOLOv7's schedule

default_hooks = dict(
    # in place of MMEngine's ParamSchedulerHook: warm-up, then cosine to lr_factor x base_lr
    param_scheduler=dict(
        type='YOLOv7ParamSchedulerHook', scheduler_type='cosine', lr_factor=0.1,
        warmup_epochs=3, min_warmup_iters=1000, warmup_bias_lr=0.1, warmup_momentum=0.8),
    # YOLOv5/v7 ModelEMA: decay 0.9999 * (1 - exp(-updates / 2000)); evaluation uses the EMA.
    # mmdet.ExpMomentumEMA's average and checkpoints, with an update that reads no tensor value
    ema=dict(type='EMAHook', ema_type='SyncFreeExpMomentumEMA', momentum=0.0001, gamma=2000,
             update_buffers=True, priority=49),
    # the last close_mosaic_epochs train on the task config's train_pipeline_stage2
    close_mosaic=dict(type='CloseMosaicHook', num_last_epochs=close_mosaic_epochs),
    checkpoint=dict(interval=val_interval))
custom_hooks = [
    # as YOLOv7's train.py: refit the anchors by k-means when they fit the data badly (BPR < 0.98)
    dict(type='AutoAnchorHook'),
    # seed each epoch from (seed, epoch, rank), so --resume continues exactly
    dict(type='EpochSeedHook'),
]
