# Keypoints on your own dataset in the YOLO layout (a data yaml with train/val image folders,
# labels/ beside images/, rows `cls cx cy w h x1 y1 ... xK yK`): copy this file, set the four
# values below and train. Everything else is turtle_kpt.py's recipe (YOLOv7-l at 256x256,
# YOLO-Pose's augmentation and losses) and its schedule (_base_/schedules/yolov7_p5.py).
# For several classes, also set model.head.head_module.num_classes.
#
#   python tools/train.py configs/examples/own_data_kpt.py
#
# As it stands, it trains on the tiger frames bundled in data/tiger_sample/.
_base_ = '../turtle_kpt.py'

# ----------------------------------------------------------------- frequently modified
data_root = 'data/tiger_sample/'  # the folder of the data yaml
data_yaml = 'tiger.yaml'  # train/val image folders, names, kpt_shape, flip_idx
# keypoint names, left/right swaps, skeleton and OKS sigmas: a metainfo file (like
# configs/_base_/datasets/turtle.py), or the data yaml itself, which gives keypoints
# kpt_0 .. kpt_{K-1} swapped as its flip_idx says, sigmas 1/K and no skeleton (and warns)
metainfo = dict(from_file=data_root + data_yaml)
num_keypoints = 12
# ------------------------------------------------------------------------------------

# turtle_kpt.py's dicts were computed from its own values: restate where these are used
model = dict(head=dict(head_module=dict(num_keypoints=num_keypoints), kpt_sigmas=metainfo))
train_dataloader = dict(dataset=dict(data_root=data_root, data_yaml=data_yaml, metainfo=metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, data_yaml=data_yaml, metainfo=metainfo))
test_dataloader = val_dataloader
