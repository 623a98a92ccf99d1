"""Ground truth for tests and benchmarks: animals on known paths and noisy detections of them."""
from .synthetic_tracks import (KnownPaths, crossing_paths, herd_paths, mot_metrics,
                               noisy_detections)

__all__ = ['KnownPaths', 'crossing_paths', 'herd_paths', 'noisy_detections', 'mot_metrics']
