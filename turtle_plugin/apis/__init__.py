"""Inference API: build a model from a config, run it on images (whole or tiled) or track
animals through a video, convert and draw its predictions, and turn it into its deploy /
ONNX-export form."""
from .deploy import YOLOv7DeployGraph, fuse_implicit, model_head, to_deploy
from .image_inference import (build_test_pipeline, check_checkpoint_keypoints, inference,
                              init_model, letterbox_size, load_image, metainfo_from_config,
                              post_processing_setting)
from .one_euro import OneEuroFilter
from .results import instances_to_arrays, result_to_dict
from .tiling import inference_tiled, merge_tile_predictions, tile_starts, tile_windows
from .track_exports import (dlc_dataframe, long_dataframe, read_dlc_csv, sleap_labels,
                            summary_dataframe, write_dlc_csv, write_sleap)
from .track_visualization import TrackDrawer, plot_trajectories, track_colour
from .tracking import (KeypointTracker, TrackSmoother, TrackTable, detect_frames,
                       keypoint_likelihoods, track_frames, track_video)
from .video import VideoFrames
from .visualization import draw_pose, draw_predictions

__all__ = [
    'init_model', 'inference', 'inference_tiled', 'build_test_pipeline', 'letterbox_size',
    'load_image', 'metainfo_from_config', 'post_processing_setting', 'result_to_dict',
    'instances_to_arrays', 'draw_predictions', 'tile_starts', 'tile_windows',
    'merge_tile_predictions', 'to_deploy', 'fuse_implicit', 'model_head', 'YOLOv7DeployGraph',
    'OneEuroFilter', 'KeypointTracker', 'TrackSmoother', 'TrackTable', 'detect_frames',
    'keypoint_likelihoods', 'track_frames', 'track_video', 'VideoFrames', 'dlc_dataframe',
    'write_dlc_csv', 'read_dlc_csv', 'long_dataframe', 'summary_dataframe', 'sleap_labels',
    'write_sleap', 'TrackDrawer', 'plot_trajectories', 'track_colour', 'draw_pose',
    'check_checkpoint_keypoints'
]
