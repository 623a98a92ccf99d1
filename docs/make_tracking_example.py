"""How the README's tracking picture (docs/tracking_tiger.png) was made, end to end:

    python docs/make_tracking_example.py --frames '../shared/data/tiger_pose/*/images/*.jpg' \
        --out-dir work_dirs/tracking_example

1. fit ``configs/tiger_kpt_tiny.py`` to the bundled training frames for a few AdamW steps
   (:func:`turtle_plugin.testing.train_briefly`: a model that finds the tiger in frames of the
   same video, not a trained model);
2. join the frames, in frame-number order, into a clip (``--size``, ``--fps``);
3. run ``tools/track.py`` on the clip; its outputs (trajectory picture included) land in
   ``--out-dir``.
"""
import argparse
import glob
import importlib.util
import re
from pathlib import Path

import cv2

from turtle_plugin.testing import train_briefly

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs' / 'tiger_kpt_tiny.py'


def make_clip(frames, path: Path, size, fps: float) -> int:
    """Write ``frames`` (image files, sorted by the number in their name) as an mp4."""
    frames = sorted(frames, key=lambda f: int(re.findall(r'\d+', Path(f).stem)[-1]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, tuple(size))
    for frame in frames:
        writer.write(cv2.resize(cv2.imread(str(frame)), tuple(size), interpolation=cv2.INTER_AREA))
    writer.release()
    return len(frames)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frames', default=str(REPO / 'data/tiger_sample/*/images/*.jpg'),
                        help='glob of the frames of one video')
    parser.add_argument('--out-dir', default='work_dirs/tracking_example')
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--num-images', type=int, default=16)
    parser.add_argument('--size', type=int, nargs=2, default=(640, 360))
    parser.add_argument('--fps', type=float, default=10.)
    parser.add_argument('track_args', nargs='*', help='more tools/track.py options, after --')
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = train_briefly(CONFIG, out / 'tiger_brief.pth', args.num_images, args.steps)
    count = make_clip(glob.glob(args.frames), out / 'tiger_clip.mp4', args.size, args.fps)
    print(f'{ckpt}: fitted in {args.steps} steps; clip of {count} frames', flush=True)
    spec = importlib.util.spec_from_file_location('track', REPO / 'tools' / 'track.py')
    track = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(track)
    track.main([str(CONFIG), str(ckpt), str(out / 'tiger_clip.mp4'), '--out-dir', str(out),
                '--batch-size', '8'] + args.track_args)


if __name__ == '__main__':
    main()
