"""In-memory cache of decoded images for small training sets.

Decoding a JPEG costs more than everything a YOLOv7 training pipeline does to it afterwards, and
a mosaic decodes four or nine of them per sample. ``YOLOKptDataset(image_cache_mb=...)`` owns one
:class:`DecodedImageCache`; ``KptLoadImage`` finds it through ``results['dataset']`` (the mosaic
and MixUp extra samples carry the dataset too) and keeps what it decoded, already resized for
training, so every later epoch skips the decode.

``image_cache_mb='auto'`` sizes the cache from the data: :func:`decoded_bytes` is what the whole
set takes once decoded at its training size, :func:`auto_cache_bytes` grants exactly that when
it fits in a fraction of the memory available to each worker, and nothing otherwise.
"""
from typing import Any, Dict, Hashable, Iterable, Optional, Sequence, Tuple

import numpy as np

from .transforms.kpt_geometry import fitted_size

__all__ = ['DecodedImageCache', 'decoded_bytes', 'auto_cache_bytes', 'mem_available_bytes']


def decoded_bytes(image_sizes: Iterable[Tuple[int, int]],
                  fit_scales: Sequence[Optional[Tuple[int, int]]], channels: int = 3) -> int:
    """Bytes of every image decoded as uint8 at each of ``fit_scales``.

    Args:
        image_sizes (Iterable[tuple[int, int]]): ``(width, height)`` of each image file.
        fit_scales (Sequence[tuple[int, int] | None]): the ``(w, h)`` each image is fitted into
            (``KptLoadImage(fit_scale=...)``; None: full size), one cache entry per image and
            scale.
        channels (int): colour channels of a decoded image.

    Returns:
        int: the total in bytes.
    """
    total = 0
    for width, height in image_sizes:
        for scale in fit_scales:
            w, h = (width, height) if scale is None else fitted_size(width, height, scale)
            total += w * h * channels
    return total


def auto_cache_bytes(needed: int, mem_available: int, processes: int,
                     fraction: float = 0.5) -> int:
    """The cache budget of one process for ``image_cache_mb='auto'``: the whole set or nothing.

    Each DataLoader worker holds its own cache, so the set must fit ``processes`` times in
    ``fraction`` of the available memory; a partial cache would still decode most images while
    taking memory from everything else.

    Args:
        needed (int): bytes of the whole set decoded (:func:`decoded_bytes`).
        mem_available (int): memory available to new allocations, bytes (``MemAvailable``).
        processes (int): processes on this machine holding a cache: DataLoader workers times
            training processes per machine (0 counts as 1: loading in the main process).
        fraction (float): share of ``mem_available`` all the caches together may take.

    Returns:
        int: ``needed`` if it fits, else 0.
    """
    if not 0. < fraction <= 1.:
        raise ValueError(f'fraction must be in (0, 1], got {fraction}')
    per_process = fraction * mem_available / max(processes, 1)
    return int(needed) if 0 < needed <= per_process else 0


def mem_available_bytes(meminfo: str = '/proc/meminfo') -> int:
    """``MemAvailable`` of the machine in bytes (memory new allocations can get without
    swapping); 0 where it cannot be read, which turns an automatic cache off."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return 0


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
