# YOLOv7-l detector for sea turtles (1 class, 256x256), MMDetection scope: the same backbone,
# neck and head code as turtle_kpt.py without the keypoint branch. Full hyp.scratch.p5 recipe;
# turtle_det_tiny.py and turtle_det_x.py inherit it.
#
#   python tools/train.py configs/turtle_det.py
default_scope = 'mmdet'
custom_imports = dict(imports=['turtle_plugin'], allow_failed_imports=False)

# ----------------------------------------------------------------- frequently modified
data_root = 'data/turtle/'  # the folder of the data yaml (YOLOv7 layout)
data_yaml = 'turtlekpt.yaml'  # keypoint columns in the labels are read and ignored
metainfo = dict(from_file='configs/_base_/datasets/turtle.py')
num_classes = 1
img_scale = (256, 256)  # (w, h)
batch_size = 8  # per GPU
num_workers = 4
# decoded training images kept per worker process, MiB (0: off). For sets that fit in memory:
# a GPU run is limited by JPEG decoding (BENCHMARKS.md); ~0.2 MiB per image at 256.
image_cache_mb = 0
max_epochs = 300
close_mosaic_epochs = 15
val_interval = 10
base_lr = 0.01
anchors = [[(12, 16), (19, 36), (40, 28)], [(36, 75), (76, 55), (72, 146)],
           [(142, 110), (192, 243), (459, 401)]]
# ------------------------------------------------------------------------------------

model = dict(
    type='YOLOv7Detector',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.], bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(type='YOLOv7Backbone', arch='l'),
    neck=dict(type='YOLOv7PAFPN', arch='l'),
    bbox_head=dict(
        type='YOLOv7Head',
        head_module=dict(
            type='YOLOv7HeadModule', num_classes=num_classes, in_channels=[256, 512, 1024],
            featmap_strides=[8, 16, 32]),
        img_size=img_scale[0],
        anchors=anchors,
        assigner=dict(type='YOLOv7OTAAssigner'),
        loss_bbox=dict(type='YOLOCIoULoss', loss_weight=0.05),
        loss_obj=dict(type='YOLOBCEWithLogitsLoss', loss_weight=0.7),
        loss_cls=dict(type='YOLOBCEWithLogitsLoss', loss_weight=0.3),
        obj_level_weights=[4.0, 1.0, 0.4]),
    test_cfg=dict(score_thr=0.001, nms=dict(iou_threshold=0.65), max_per_img=300))

# ------------------------------------------------------------------ data
# Training images are decoded straight to the mosaic's scale (YOLOv7's load_image: fit inside
# img_scale keeping the aspect ratio; libjpeg decodes large JPEGs at 1/2-1/8 size when that is
# still large enough); evaluation keeps the full-size decode + letterbox, mapped back exactly.
train_load = dict(type='KptLoadImage', fit_scale=img_scale)
mosaic = [
    dict(type='RandomChoice', prob=[0.8, 0.2], transforms=[
        [dict(type='KptMosaic', img_scale=img_scale, pad_val=114.,
              pre_transform=[train_load])],
        [dict(type='KptMosaic9', img_scale=img_scale, pad_val=114.,
              pre_transform=[train_load])]]),
    dict(type='KptRandomAffine', degrees=0., translate=0.2, scale=0.9, shear=0.,
         perspective=0., border=(-img_scale[0] // 2, -img_scale[1] // 2)),
]
pack = dict(type='PackDetInputs',
            meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                       'pad_param', 'instances'))
train_pipeline = [
    train_load,
    *mosaic,
    dict(type='KptMixUp', prob=0.15, pre_transform=[train_load, *mosaic]),
    dict(type='KptHSVRandomAug', hue=0.015, saturation=0.7, value=0.4),
    dict(type='KptRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='KptFilterAnnotations', min_box_size=2.),
    dict(type='KptToDetAnnotations'),
    pack,
]
train_pipeline_stage2 = [
    train_load,
    dict(type='KptLetterResize', scale=img_scale, pad_val=114., allow_scale_up=True),
    dict(type='KptRandomAffine', degrees=0., translate=0.2, scale=0.9, shear=0., perspective=0.),
    dict(type='KptHSVRandomAug', hue=0.015, saturation=0.7, value=0.4),
    dict(type='KptRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='KptFilterAnnotations', min_box_size=2.),
    dict(type='KptToDetAnnotations'),
    pack,
]
val_pipeline = [
    dict(type='LoadImageFromFile'),
    # ground truth converted before the letterbox: it stays in original pixels, as MMDetection's
    # test pipelines keep it (LoadAnnotations after Resize), for the visualizer's GT panel
    dict(type='KptToDetAnnotations'),
    dict(type='KptLetterResize', scale=img_scale, pad_val=114., allow_scale_up=False),
    pack,
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='YOLODetDataset', data_root=data_root, data_yaml=data_yaml, split='train',
        metainfo=metainfo, image_cache_mb=image_cache_mb, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    pin_memory=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type='YOLODetDataset', data_root=data_root, data_yaml=data_yaml, split='val',
        metainfo=metainfo, test_mode=True, pipeline=val_pipeline))
test_dataloader = val_dataloader

# COCO box mAP (MMDetection's CocoMetric; ground truth from the packed `instances`, or pass
# ann_file=) and P/R/F1 at the best threshold with a PR curve (BoxPRMetric, PNG + JSON)
val_evaluator = [dict(type='CocoMetric', metric='bbox'), dict(type='BoxPRMetric')]
test_evaluator = val_evaluator

# ------------------------------------------------------------------ schedule (see turtle_kpt.py)
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=val_interval,
    dynamic_intervals=[(max_epochs - close_mosaic_epochs, 1)])
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='YOLOv7OptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=base_lr, momentum=0.937, nesterov=True, weight_decay=5e-4),
    # weight_decay x (train_dataloader.batch_size x GPUs) / 64, set at train start
    paramwise_cfg=dict(base_total_batch_size=64))
param_scheduler = None
custom_hooks = [
    # as YOLOv7's train.py: refit the anchors by k-means when they fit the data badly (BPR < 0.98)
    dict(type='AutoAnchorHook'),
    # seed each epoch from (seed, epoch, rank), so --resume continues exactly
    dict(type='EpochSeedHook'),
    dict(type='YOLOv7ParamSchedulerHook', scheduler_type='cosine', lr_factor=0.1,
         warmup_epochs=3, min_warmup_iters=1000, warmup_bias_lr=0.1, warmup_momentum=0.8),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, gamma=2000,
         update_buffers=True, priority=49),
    dict(type='CloseMosaicHook', num_last_epochs=close_mosaic_epochs,
         new_train_pipeline=train_pipeline_stage2),
]

# ------------------------------------------------------------------ runtime
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=val_interval, max_keep_ckpts=3,
                    save_best='coco/bbox_mAP', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # progress bars for training epochs, validation and testing, on a terminal only
    progress=dict(type='ProgressBarHook'),
    # drawings: tools/test.py --show-dir DIR, or draw=True (first image of every interval-th
    # validation batch to vis_data/vis_image)
    visualization=dict(type='DetVisualizationHook', draw=False, interval=50, score_thr=0.3))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
# tools/train.py --tensorboard appends dict(type='TensorboardVisBackend')
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
