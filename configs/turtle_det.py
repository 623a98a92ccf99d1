# YOLOv7-l detector for sea turtles (1 class, 256x256), MMDetection scope: the same backbone,
# neck and head code as turtle_kpt.py without the keypoint branch. Full hyp.scratch.p5 recipe:
# the schedule and the runtime are its bases' (_base_/schedules/yolov7_p5.py,
# _base_/default_runtime.py), this file holds the model, the data and the evaluation;
# turtle_det_tiny.py and turtle_det_x.py inherit it.
#
#   python tools/train.py configs/turtle_det.py
_base_ = './_base_/schedules/yolov7_p5.py'
default_scope = 'mmdet'

# ----------------------------------------------------------------- frequently modified
data_root = 'data/turtle/'  # the folder of the data yaml (YOLOv7 layout)
data_yaml = 'turtlekpt.yaml'  # keypoint columns in the labels are read and ignored
metainfo = dict(from_file='configs/_base_/datasets/turtle.py')
num_classes = 1
img_scale = (256, 256)  # (w, h)
batch_size = 8  # per GPU
num_workers = 4  # 'auto': usable CPUs - 1, at most 8 and batch_size (tools/train.py)
# decoded training images kept per worker process, MiB (0: off). 'auto': the whole training set
# (~0.1-0.2 MiB per image at 256) when it fits once per worker in half the free memory, else
# off; it takes JPEG decoding, a GPU run's limit, out of every epoch after the first
# (BENCHMARKS.md, Data loader diagnosis)
image_cache_mb = 'auto'
anchors = [[(12, 16), (19, 36), (40, 28)], [(36, 75), (76, 55), (72, 146)],
           [(142, 110), (192, 243), (459, 401)]]
# ------------------------------------------------------------------------------------

model = dict(
    type='YOLOv7Detector',
    # non_blocking: the batch's host-to-GPU copy from the loader's pinned memory overlaps
    # with the work already queued (MMEngine's default waits for it)
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.], bgr_to_rgb=True,
        pad_size_divisor=32, non_blocking=True),
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

# ------------------------------------------------------------------ the task's hooks, logs
default_hooks = dict(
    # the last close_mosaic_epochs (the schedule's): YOLOv7's non-mosaic training path
    close_mosaic=dict(new_train_pipeline=train_pipeline_stage2),
    checkpoint=dict(save_best='coco/bbox_mAP'),
    # drawings: tools/test.py --show-dir DIR, or draw=True (first image of every interval-th
    # validation batch to vis_data/vis_image)
    visualization=dict(type='DetVisualizationHook', draw=False, interval=50, score_thr=0.3))
visualizer = dict(type='DetLocalVisualizer')
