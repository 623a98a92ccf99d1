# The seed recipe of turtle_kpt.py, kept reproducible: YOLOv7's hyp.scratch.p5 augmentation
# (4- and 9-image mosaic, scale 0.9, translate 0.2, MixUp 0.15; closed for the schedule's last
# 15 epochs), OTA assignment and the OKS loss alone with the metainfo's sigmas, keypoints
# starting at the diagonal neighbour's cell centre, evaluated on bilinear-shrunk images -- as
# the original's
# `train.py --hyp data/hyp.scratch.p5.yaml` trains a keypoint head. BENCHMARKS.md (Accuracy)
# compares it with the default recipe: `bench/accuracy.py --models ours ours+p5` applies this
# file's recipe to any keypoint config.
_base_ = './turtle_kpt.py'

# (img_scale and the image loading are turtle_kpt.py's: set them there)
mosaic = [
    # YOLOv7 takes a 9-image mosaic 20% of the time
    dict(type='RandomChoice', prob=[0.8, 0.2], transforms=[
        [dict(_base_.train_pipeline[1])],  # turtle_kpt.py's 4-image mosaic
        [dict(_base_.train_pipeline[1], type='KptMosaic9')]]),
    dict(_base_.train_pipeline[2], translate=0.2, scale=0.9),  # its affine, p5 strengths
]
train_pipeline = [
    _base_.train_load,
    *mosaic,
    dict(type='KptMixUp', prob=0.15, pre_transform=[_base_.train_load, *mosaic]),
    *_base_.train_pipeline[3:],  # HSV, flip, filter, targets, packing
]
train_pipeline_stage2 = [
    *_base_.train_pipeline_stage2[:2],  # load, letterbox
    dict(_base_.train_pipeline_stage2[2], translate=0.2, scale=0.9),
    *_base_.train_pipeline_stage2[3:],
]
val_pipeline = [
    _base_.val_pipeline[0],
    dict(_base_.val_pipeline[1], shrink_interpolation='linear'),
    *_base_.val_pipeline[2:],
]

model = dict(head=dict(head_module=dict(kpt_prior='zero'), assigner=dict(type='YOLOv7OTAAssigner'),
                       loss_kpt_aux=None))
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
# the schedule's last close_mosaic_epochs without mosaic, validated every epoch; the metainfo's
# sigmas throughout
train_cfg = dict(dynamic_intervals=[(_base_.max_epochs - _base_.close_mosaic_epochs, 1)])
default_hooks = dict(
    close_mosaic=dict(new_train_pipeline=train_pipeline_stage2,
                      num_last_epochs=_base_.close_mosaic_epochs, last_ratio=None),
    kpt_sigma_warmup=dict(warmup_ratio=0),
    # YOLOv7's warm-up: 3 epochs, at least 1000 iterations
    param_scheduler=dict(min_warmup_iters=1000))
