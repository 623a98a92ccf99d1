"""Reading a video frame by frame with OpenCV, with errors that say what went wrong."""
from pathlib import Path
from typing import Iterator, Tuple, Union

import cv2
import numpy as np

__all__ = ['VideoFrames']


class VideoFrames:
    """The BGR frames of a video file, read lazily; ``fps``, ``num_frames`` and ``size`` are
    known once it is opened.

    Opening reads the first frame, so a file OpenCV cannot decode fails here, not after a
    model was loaded.

    Args:
        path (str | Path): the video file.
        default_fps (float): frame rate to use when the file records none.
    """

    def __init__(self, path: Union[str, Path], default_fps: float = 25.):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f'video {self.path} does not exist')
        capture = cv2.VideoCapture(str(self.path))
        try:
            ok, first = capture.read() if capture.isOpened() else (False, None)
            if not ok:
                raise ValueError(f'OpenCV could not read a frame of {self.path}: not a video, '
                                 f'or a codec its FFmpeg build lacks (try re-encoding it, e.g. '
                                 f'`ffmpeg -i {self.path.name} -c:v libx264 out.mp4`)')
            fps = capture.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else float(default_fps)
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            self.num_frames = count if count > 0 else None  # an estimate for some containers
            self.size: Tuple[int, int] = (first.shape[1], first.shape[0])
        finally:
            capture.release()

    def __iter__(self) -> Iterator[np.ndarray]:
        capture = cv2.VideoCapture(str(self.path))
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield frame
        finally:
            capture.release()
