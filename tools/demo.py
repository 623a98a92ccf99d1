"""Run a trained model on an image, a folder of images or a video; save drawings and JSON.

    python tools/demo.py configs/tiger_kpt_tiny.py work_dirs/tiger_kpt_tiny/best.pth \
        data/tiger_sample/val/images --out-dir demo_out
    python tools/demo.py configs/turtle_kpt.py CKPT clip.mp4 --img-scale 1280 736 --deploy
    python tools/demo.py configs/turtle_kpt.py CKPT drone.jpg --tile

For each image ``NAME.EXT`` it writes ``NAME.jpg`` (boxes, keypoints and skeleton drawn with the
metainfo's colours) and ``NAME.json`` (:func:`turtle_plugin.apis.result_to_dict`); for a video
``NAME.mp4`` (annotated, same frame rate) and ``NAME.json`` holding one entry per frame.
"""
import argparse
import json
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

from turtle_plugin.apis import (draw_predictions, inference, inference_tiled, init_model,
                                result_to_dict)

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='turtle_plugin inference demo')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('input', help='an image, a folder of images or a video')
    parser.add_argument('--out-dir', default='demo_out', help='where drawings and JSON go')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda, cuda:1')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='keep (draw and save) instances scoring at least this')
    parser.add_argument('--kpt-thr', type=float, default=0.3,
                        help='draw keypoints whose score is at least this')
    parser.add_argument('--img-scale', type=int, nargs=2, metavar=('W', 'H'),
                        help='network input size instead of the config\'s (multiples of 32)')
    parser.add_argument('--tile', action='store_true',
                        help='tiled inference: overlapping windows of the training size')
    parser.add_argument('--tile-overlap', type=float, default=0.2,
                        help='fraction of a window shared with its neighbour')
    parser.add_argument('--deploy', action='store_true',
                        help='fuse RepConv / BatchNorm / implicit layers first (faster)')
    return parser.parse_args(argv)


def collect_inputs(path: Path) -> List[Path]:
    """The images of a folder (sorted), or the file itself."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {path}')
        return files
    if not path.is_file():
        raise FileNotFoundError(f'input {path} does not exist')
    if path.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
        raise ValueError(f'{path} is neither an image ({", ".join(IMAGE_SUFFIXES)}) nor a '
                         f'video ({", ".join(VIDEO_SUFFIXES)})')
    return [path]


class Predictor:
    """The model and the demo's settings: one call per image array."""

    def __init__(self, args: argparse.Namespace):
        self.model = init_model(args.config, args.checkpoint, device=args.device,
                                cfg_options={'model.test_cfg.score_thr': args.score_thr},
                                deploy=args.deploy)
        self.args = args

    def __call__(self, img: np.ndarray, path: Optional[str] = None):
        if self.args.tile:
            sample = inference_tiled(self.model, img, overlap=self.args.tile_overlap)
        else:
            sample = inference(self.model, img, img_scale=self.args.img_scale)
        sample.set_metainfo(dict(img_path=path))
        return sample

    def draw(self, img: np.ndarray, sample) -> np.ndarray:
        return draw_predictions(img, sample, self.model.dataset_meta, self.args.score_thr,
                                self.args.kpt_thr)

    def to_dict(self, sample) -> dict:
        return result_to_dict(sample, self.model.dataset_meta, self.args.score_thr)


def run_image(predictor: Predictor, path: Path, out_dir: Path) -> List[Path]:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'OpenCV could not decode {path}')
    sample = predictor(img, str(path))
    drawn, record = out_dir / f'{path.stem}.jpg', out_dir / f'{path.stem}.json'
    cv2.imwrite(str(drawn), predictor.draw(img, sample))
    record.write_text(json.dumps(predictor.to_dict(sample), indent=1))
    return [drawn, record]


def run_video(predictor: Predictor, path: Path, out_dir: Path) -> List[Path]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f'OpenCV could not open the video {path}')
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.
    drawn, record = out_dir / f'{path.stem}.mp4', out_dir / f'{path.stem}.json'
    writer, frames = None, []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(str(drawn), cv2.VideoWriter_fourcc(*'mp4v'), fps,
                                         (width, height))
                if not writer.isOpened():
                    raise RuntimeError(f'OpenCV could not write {drawn} (mp4v codec)')
            sample = predictor(frame, str(path))
            writer.write(predictor.draw(frame, sample))
            result = predictor.to_dict(sample)
            result['frame_index'] = len(frames)
            frames.append(result)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if not frames:
        raise ValueError(f'the video {path} has no readable frame')
    record.write_text(json.dumps(dict(video=str(path), fps=fps, frames=frames), indent=1))
    return [drawn, record]


def main(argv: Optional[Sequence[str]] = None) -> List[Path]:
    """Run the demo; returns the files written."""
    args = parse_args(argv)
    inputs = collect_inputs(Path(args.input))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    predictor = Predictor(args)
    written = []
    for path in inputs:
        run = run_video if path.suffix.lower() in VIDEO_SUFFIXES else run_image
        written += run(predictor, path, out_dir)
        print(f'{path} -> {", ".join(str(p) for p in written[-2:])}', flush=True)
    return written


if __name__ == '__main__':
    main()
