"""Helpers for tests, benchmarks and examples: animals on known paths and noisy detections of
them, and a keypoint model fitted in seconds to a few frames."""
from .brief_training import train_briefly
from .synthetic_tracks import (KnownPaths, crossing_paths, herd_paths, mot_metrics,
                               noisy_detections)

__all__ = ['train_briefly', 'KnownPaths', 'crossing_paths', 'herd_paths', 'noisy_detections', 'mot_metrics']
