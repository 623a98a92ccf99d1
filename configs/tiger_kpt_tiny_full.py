# YOLOv7-tiny + 12-keypoint branch on the full Ultralytics Tiger-Pose set (210 train / 53 val
# frames, AGPL-3.0 data), sized to train from scratch on a 2-core CPU in about 30 minutes: the
# run of the README's results table.
#
#   ln -s /path/to/tiger-pose data/tiger-pose   # train/{images,labels}, val/{images,labels}
#   python tools/train.py configs/tiger_kpt_tiny_full.py
#
# The recipe is tiger_kpt_tiny.py's (turtle_kpt.py's with the tiny model's loss gains and final
# lr); only the data, the number of epochs and the validation interval change.
_base_ = './tiger_kpt_tiny.py'

# ----------------------------------------------------------------- frequently modified
data_root = 'data/tiger-pose/'
data_yaml = ''  # no data yaml: the split folders directly (labels/ beside images/)
max_epochs = 90
val_interval = 10
# ------------------------------------------------------------------------------------

train_dataloader = dict(
    dataset=dict(data_root=data_root, data_yaml=data_yaml, data_prefix=dict(img='train/images')))
val_dataloader = dict(
    dataset=dict(data_root=data_root, data_yaml=data_yaml, data_prefix=dict(img='val/images')))
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=max_epochs, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
