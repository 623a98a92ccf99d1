# Runtime shared by every config: the plugin import, environment, logging, checkpointing and
# the visualiser's backends. A schedule (_base_/schedules/) adds its training hooks on top; a
# task config adds its scope, the checkpoint's best metric, the visualiser and its drawing hook.
custom_imports = dict(imports=['turtle_plugin'], allow_failed_imports=False)

default_hooks = dict(
    # MMEngine's RuntimeInfoHook, but the losses reach the message hub when the logger reads
    # them, not every iteration (.item() per loss made the host wait for the GPU each step)
    runtime_info=dict(type='DeferredRuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    # every val_interval epochs (the schedule); the best by the task's metric (save_best)
    checkpoint=dict(type='CheckpointHook', max_keep_ckpts=3, rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # progress bars for training epochs, validation and testing, on a terminal only
    progress=dict(type='ProgressBarHook'),
    # stop, naming the epoch, the tensor and the loss, when a weight turns NaN or infinite,
    # before a checkpoint keeps it (max_keep_ckpts would delete the good ones)
    divergence_check=dict(type='DivergenceCheckHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
# tools/train.py --tensorboard appends dict(type='TensorboardVisBackend')
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
