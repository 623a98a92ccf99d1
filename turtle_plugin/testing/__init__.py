"""Helpers for tests, benchmarks and examples: animals on known paths and noisy detections of
them, a keypoint model fitted in seconds to a few frames, and a counter of the calls that would
synchronise host and CUDA device."""
from .brief_training import train_briefly
from .host_syncs import HostSync, HostSyncCounter, count_host_syncs
from .synthetic_tracks import (KnownPaths, crossing_paths, herd_paths, mot_metrics,
                               noisy_detections)

__all__ = ['train_briefly', 'KnownPaths', 'crossing_paths', 'herd_paths', 'noisy_detections', 'mot_metrics',
           'HostSync', 'HostSyncCounter', 'count_host_syncs']
