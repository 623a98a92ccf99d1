"""In-memory cache of decoded images for small training sets.

Decoding a JPEG costs more than everything a YOLOv7 training pipeline does to it afterwards, and
a mosaic decodes four or nine of them per sample. ``YOLOKptDataset(image_cache_mb=...)`` owns one
:class:`DecodedImageCache`; ``KptLoadImage`` finds it through ``results['dataset']`` (the mosaic
and MixUp extra samples carry the dataset too) and keeps what it decoded, already resized for
training, so every later epoch skips the decode.
"""
from typing import Any, Dict, Hashable, Optional, Tuple

import numpy as np

__all__ = ['DecodedImageCache']


class DecodedImageCache:
    """Decoded images by key, up to a byte budget.

    Entries are never evicted: training draws images uniformly, so any eviction order would
    mostly throw away images that are needed again soon. Once the budget is reached, new images
    are simply not stored. Stored images are made read-only so that a transform writing into its
    input fails loudly instead of corrupting every later sample of that image.

    The cache lives in the process that fills it: each DataLoader worker fills its own copy
    during the first epoch (keep workers alive with ``persistent_workers=True``), so the memory
    used is up to ``max_bytes`` per worker.

    Args:
        max_bytes (int): budget for the stored image arrays, in bytes.
    """

    def __init__(self, max_bytes: int):
        if max_bytes < 0:
            raise ValueError(f'max_bytes must be >= 0, got {max_bytes}')
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: Dict[Hashable, Tuple[np.ndarray, Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Optional[Tuple[np.ndarray, Any]]:
        """The ``(image, meta)`` stored under ``key``, or None (counted as a miss)."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def put(self, key: Hashable, img: np.ndarray, meta: Any = None) -> bool:
        """Store ``img`` (made read-only) and ``meta`` under ``key`` if the budget allows.

        Returns:
            bool: whether the image is now cached.
        """
        if key in self._entries:
            return True
        if self.nbytes + img.nbytes > self.max_bytes:
            return False
        img.setflags(write=False)
        self._entries[key] = (img, meta)
        self.nbytes += img.nbytes
        return True

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        self._entries.clear()
        self.nbytes = self.hits = self.misses = 0

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({len(self)} images, {self.nbytes / 2**20:.1f} of '
                f'{self.max_bytes / 2**20:.1f} MiB, {self.hits} hits, {self.misses} misses)')
