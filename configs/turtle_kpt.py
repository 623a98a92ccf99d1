# YOLOv7-l with a keypoint branch for sea turtles (1 class, 6 keypoints, 256x256), MMPose scope.
# The full training recipe: YOLO-Pose's (the original YOLOv7 pose branch: hyp.pose augmentation,
# YOLOv5 assignment, the OKS loss) plus a scale-normalised L1 keypoint term, a warm-up of the OKS
# loss's sigmas, the mosaic closed for the second half of the epochs and area-averaged
# evaluation resizing, chosen by bench/accuracy.py
# (BENCHMARKS.md, Accuracy). The seed's
# hyp.scratch.p5 + OTA recipe stays reproducible as turtle_kpt_p5.py.
# Variants (turtle_kpt_tiny.py, turtle_kpt_x.py, tiger_kpt_tiny.py) inherit it with _base_.
#
# The schedule and the runtime are its bases' (_base_/schedules/yolov7_p5.py: epochs, lr, the
# training hooks; _base_/default_runtime.py): this file holds the model, the data and the
# evaluation.
#
#   python tools/train.py configs/turtle_kpt.py
#   bash tools/dist_train.sh configs/turtle_kpt.py 4
_base_ = './_base_/schedules/yolov7_p5.py'
default_scope = 'mmpose'

# ----------------------------------------------------------------- frequently modified
data_root = 'data/turtle/'  # the folder of the data yaml (YOLOv7 layout)
data_yaml = 'turtlekpt.yaml'  # train/val image folders, class names (labels/ beside images/)
metainfo = dict(from_file='configs/_base_/datasets/turtle.py')  # names, flips, sigmas
num_classes = 1
num_keypoints = 6
kpt_dim = 2  # 2: x, y per keypoint (the turtle labels); 3: x, y, visibility logit
img_scale = (256, 256)  # (w, h)
batch_size = 8  # per GPU
num_workers = 4  # 'auto': usable CPUs - 1, at most 8 and batch_size (tools/train.py)
# the last part of the epochs trains on whole frames (train_pipeline_stage2, no mosaic): a
# mosaic crop cuts most animals that fill the frame (BENCHMARKS.md, Accuracy); read against
# max_epochs at train time, so an edited schedule closes at the same point of it
close_mosaic_ratio = 0.5
# decoded training images kept per worker process, MiB (0: off). 'auto': the whole training set
# (~0.1-0.2 MiB per image at 256) when it fits once per worker in half the free memory, else
# off; it takes JPEG decoding, a GPU run's limit, out of every epoch after the first
# (BENCHMARKS.md, Data loader diagnosis)
image_cache_mb = 'auto'
# YOLOv7's P5 anchors (w, h in pixels). They were fitted to COCO at 640: check them on your
# data with `python tools/analysis/check_anchors.py configs/turtle_kpt.py --kmeans`.
anchors = [[(12, 16), (19, 36), (40, 28)], [(36, 75), (76, 55), (72, 146)],
           [(142, 110), (192, 243), (459, 401)]]
# ------------------------------------------------------------------------------------

model = dict(
    type='YOLOv7PoseEstimator',  # MMPose's BottomupPoseEstimator + a channel check
    # non_blocking: the batch's host-to-GPU copy from the loader's pinned memory overlaps
    # with the work already queued (MMEngine's default waits for it)
    data_preprocessor=dict(
        type='PoseDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.],
        bgr_to_rgb=True, pad_size_divisor=32, non_blocking=True),
    backbone=dict(type='YOLOv7Backbone', arch='l'),
    neck=dict(type='YOLOv7PAFPN', arch='l'),
    head=dict(
        type='YOLOv7KptHead',
        head_module=dict(
            type='YOLOv7HeadModule', num_classes=num_classes, in_channels=[256, 512, 1024],
            num_keypoints=num_keypoints, kpt_dim=kpt_dim, kpt_head='conv',
            # every keypoint starts at the diagonal neighbour's centre (keypoint-conv bias 0, as
            # the original's conv starts on average); 'centre' (bias 0.5) won at 100 epochs on
            # the study sets but lost at 300 epochs and on the held-out set (BENCHMARKS.md)
            kpt_prior='zero', featmap_strides=[8, 16, 32]),
        img_size=img_scale[0],
        anchors=anchors,
        # YOLOv5's assignment (YOLO-Pose's ComputeLoss): every anchor within 4x of the box, at
        # its cell and the two nearest neighbours -- 4-6x the positives of OTA, so 4-6x the
        # keypoint samples per step (BENCHMARKS.md, Accuracy)
        assigner=dict(type='YOLOv5Assigner'),
        # hyp.scratch.p5 gains; the head scales them by 3/layers, classes/80, (img/640)^2
        loss_bbox=dict(type='YOLOCIoULoss', loss_weight=0.05),
        loss_obj=dict(type='YOLOBCEWithLogitsLoss', loss_weight=0.7),
        loss_cls=dict(type='YOLOBCEWithLogitsLoss', loss_weight=0.3),
        loss_kpt=dict(type='YOLOPoseOKSLoss', loss_weight=0.1),  # hyp.pose kpt gain
        loss_kpt_vis=dict(type='YOLOBCEWithLogitsLoss', loss_weight=0.3),
        # 1 - OKS has no gradient for keypoints far from their target (where every keypoint
        # starts); this L1 term, (|dx| + |dy|) / sqrt(box area), pulls them in at any distance
        loss_kpt_aux=dict(type='KptScaledL1Loss', loss_weight=0.1),
        kpt_sigmas=metainfo,
        obj_level_weights=[4.0, 1.0, 0.4]),
    # YOLOv7's test.py settings for mAP: keep low-score boxes, NMS IoU 0.65. flip_test=True
    # also runs the mirrored image and averages the two predictions anchor by anchor (keypoints
    # paired by the metainfo's flip_indices): twice the inference time (BENCHMARKS.md, Accuracy)
    test_cfg=dict(score_thr=0.001, nms=dict(iou_threshold=0.65), max_per_img=300,
                  flip_test=False))

# ------------------------------------------------------------------ data
# Training images are decoded straight to the mosaic's scale (YOLOv7's load_image: fit inside
# img_scale keeping the aspect ratio; libjpeg decodes large JPEGs at 1/2-1/8 size when that is
# still large enough); evaluation keeps the full-size decode + letterbox, mapped back exactly.
train_load = dict(type='KptLoadImage', fit_scale=img_scale)
codec = dict(type='YOLOXPoseAnnotationProcessor', input_size=img_scale)
# hyp.pose (YOLO-Pose): a 4-image mosaic every time, scale gain +-0.5, translate 0.1, no MixUp
# (hyp.scratch.p5's scale 0.9 shrinks an animal to a tenth of its size, too small to place
# keypoints on, 20% of the time)
train_pipeline = [
    train_load,
    dict(type='KptMosaic', img_scale=img_scale, pad_val=114., pre_transform=[train_load]),
    dict(type='KptRandomAffine', degrees=0., translate=0.1, scale=0.5, shear=0.,
         perspective=0., border=(-img_scale[0] // 2, -img_scale[1] // 2)),
    dict(type='KptHSVRandomAug', hue=0.015, saturation=0.7, value=0.4),
    dict(type='KptRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='KptFilterAnnotations', min_box_size=2.),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
# the last close_mosaic_ratio of the epochs (default_hooks.close_mosaic): YOLOv7's non-mosaic
# training path
train_pipeline_stage2 = [
    train_load,
    dict(type='KptLetterResize', scale=img_scale, pad_val=114., allow_scale_up=True),
    dict(type='KptRandomAffine', degrees=0., translate=0.1, scale=0.5, shear=0., perspective=0.),
    dict(type='KptHSVRandomAug', hue=0.015, saturation=0.7, value=0.4),
    dict(type='KptRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='KptFilterAnnotations', min_box_size=2.),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    # pixel-area shrinking, as YOLOv7's test.py: no aliasing when a large frame becomes 256 px
    dict(type='KptLetterResize', scale=img_scale, pad_val=114., allow_scale_up=False,
         shrink_interpolation='area'),
    dict(type='PackPoseInputs',
         meta_keys=('id', 'img_id', 'img_path', 'ori_shape', 'img_shape', 'input_size',
                    'input_center', 'input_scale', 'flip_indices', 'raw_ann_info')),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='YOLOKptDataset', data_root=data_root, data_yaml=data_yaml, split='train',
        metainfo=metainfo, image_cache_mb=image_cache_mb, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    pin_memory=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type='YOLOKptDataset', data_root=data_root, data_yaml=data_yaml, split='val',
        metainfo=metainfo, test_mode=True, pipeline=val_pipeline))
test_dataloader = val_dataloader

# One evaluation, three reports: keypoint OKS AP with the metainfo's sigmas (MMPose's CocoMetric,
# coco/AP ...), COCO box mAP of the same predictions (coco/bbox_mAP ...), P/R/F1 at the best
# threshold with PR curves (pr/..., PNG + JSON in the log dir) and per-keypoint errors (kpt/...).
# Ground truth comes from the samples' raw annotations; pass ann_file= for a COCO json instead.
val_evaluator = dict(type='KptBoxCocoMetric', score_mode='bbox', nms_mode='none')
test_evaluator = val_evaluator

# ------------------------------------------------------------------ the task's hooks, logs
# validate every val_interval epochs to the end (the schedule's denser validation once the
# mosaic closes would validate every epoch of the second half)
train_cfg = dict(dynamic_intervals=None)
default_hooks = dict(
    close_mosaic=dict(new_train_pipeline=train_pipeline_stage2, num_last_epochs=None,
                      last_ratio=close_mosaic_ratio),
    # the OKS loss's sigmas start at 1/K (Ultralytics' loss width) and reach the metainfo's at
    # half the epochs: small sigmas make 1 - OKS flat a few pixels off (BENCHMARKS.md,
    # Accuracy: 3.9x the OKS AP on mirror-mouse, sigmas 0.05; a no-op where the sigmas are 1/K,
    # as Tiger-Pose's). The metric keeps the metainfo's; warmup_ratio=0 turns it off.
    kpt_sigma_warmup=dict(type='KptSigmaWarmupHook', start='uniform', warmup_ratio=0.5),
    # warm up for the schedule's 3 epochs, without YOLOv7's minimum of 1000 iterations: on a
    # set of 72-210 frames at batch 8 that minimum is 37-111 epochs at a fraction of the lr,
    # and keypoints barely learn in a 90-100-epoch run (BENCHMARKS.md, Accuracy: OKS AP 0.003
    # against 0.064 on mirror-mouse). Sets of over 2,700 frames warm up longer than 1000
    # iterations either way.
    param_scheduler=dict(min_warmup_iters=0),
    checkpoint=dict(save_best='coco/AP'),
    # drawings: tools/test.py --show-dir DIR, or enable=True (first image of every interval-th
    # validation batch to vis_data/vis_image); instances scoring below score_thr are not drawn
    visualization=dict(type='KptVisualizationHook', enable=False, interval=50, score_thr=0.3))
# boxes and links 2 px wide; keypoint dots have radius 3
visualizer = dict(type='PoseLocalVisualizer', line_width=2)
log_processor = dict(num_digits=6)
