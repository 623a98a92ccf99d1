# YOLOv7-tiny + 12-keypoint branch on the tiger-pose sample bundled in data/tiger_sample/
# (16 train / 8 val frames of Ultralytics Tiger-Pose, AGPL-3.0 data). The README's default run:
#
#   python tools/train.py configs/tiger_kpt_tiny.py
#
# For the full Tiger-Pose set (210 / 53 frames) point data_root / data_yaml at it, e.g.
#   --cfg-options train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=...
_base_ = './turtle_kpt_tiny.py'

# ----------------------------------------------------------------- frequently modified
data_root = 'data/tiger_sample/'
data_yaml = 'tiger.yaml'
metainfo = dict(from_file='configs/_base_/datasets/tiger.py')
num_keypoints = 12
batch_size = 8
num_workers = 2
max_epochs = 100
val_interval = 10
# ------------------------------------------------------------------------------------

model = dict(head=dict(head_module=dict(num_keypoints=num_keypoints), kpt_sigmas=metainfo))

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    dataset=dict(data_root=data_root, data_yaml=data_yaml, metainfo=metainfo))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    dataset=dict(data_root=data_root, data_yaml=data_yaml, metainfo=metainfo))
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=max_epochs, val_interval=val_interval)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=val_interval))
