"""Test-time options on trained runs: the same checkpoint scored with each of them.

Two post-processing options change no weight, so they can be scored on checkpoints the
accuracy bench already trained:

* ``flip``: ``model.test_cfg.flip_test=True`` runs every validation image and its horizontal
  mirror and averages the two predictions anchor by anchor (keypoints paired by the metainfo's
  ``flip_indices``; ``YOLOv7HeadCore.predict_flip_by_feat``);
* ``merge``: ``model.test_cfg.merge_nms=True`` (YOLOv5's merge-NMS) replaces each kept box and
  its keypoints by the score-weighted mean of the candidates it suppressed -- the neighbouring
  anchors that predicted the same animal (``filter_and_nms(merge=True)``).

This script takes run folders of ``bench/accuracy.py`` (each holds the ``bench_config.py`` it
trained with and its checkpoints), scores the last checkpoint of each on its validation split
once per mode (``plain``, ``flip``, ``merge`` or ``flip+merge``) with the run's own evaluator
(``KptBoxCocoMetric`` against the bench's ground-truth file), and reports OKS AP, AP50, AP75, box
mAP, mean pixel error, PCK and the test wall time of each, per run and as means. Nothing is
trained; the checkpoints are the runs' own, so the columns differ only by the options.
Example (the default recipe's two mirror-mouse runs at 300 epochs)::

    python bench/test_time.py bench_results/acc_mouse300_init/ours_seed0 \\
        bench_results/acc_mouse300_init/ours_seed1 --modes plain flip \\
        --out bench_results/test_time.json
"""
import argparse
import re
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from _common import machine_info, print_table, result_payload, utc_now, write_json
from accuracy import METRIC_KEYS  # the accuracy bench's figures, under its names


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', help='run folders of bench/accuracy.py')
    parser.add_argument('--modes', nargs='+', default=['plain', 'flip', 'merge', 'flip+merge'],
                        help='what to score each checkpoint with: plain, or options of '
                        f'{sorted(OPTIONS)} joined by +')
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint file name in every run folder (default: the last '
                        'epoch_N.pth)')
    parser.add_argument('--out', default='bench_results/test_time.json', help='JSON output')
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    args = parser.parse_args(argv)
    for mode in args.modes:
        mode_options(mode)  # a typo fails here, not after the first run's scoring
    return args


# each option: the model.test_cfg key it switches on
OPTIONS = {'flip': 'flip_test', 'merge': 'merge_nms'}


def mode_options(mode: str) -> Dict[str, bool]:
    """``'flip+merge'`` -> ``{'flip_test': True, 'merge_nms': True}``; ``'plain'`` -> all
    off."""
    names = [] if mode == 'plain' else mode.split('+')
    unknown = [name for name in names if name not in OPTIONS]
    if unknown or len(set(names)) != len(names):
        raise SystemExit(f'mode {mode!r}: use plain or options of {sorted(OPTIONS)} joined by '
                         f'+, each once')
    return {key: name in names for name, key in OPTIONS.items()}


def last_checkpoint(run: Path, name: Optional[str] = None) -> Path:
    """``run/name``, or the ``epoch_N.pth`` with the largest N."""
    if name is not None:
        path = run / name
        if not path.is_file():
            raise SystemExit(f'{path}: no such checkpoint')
        return path
    epochs = sorted((int(m.group(1)), p) for p in run.glob('epoch_*.pth')
                    if (m := re.fullmatch(r'epoch_(\d+)\.pth', p.name)))
    if not epochs:
        raise SystemExit(f'{run}: no epoch_N.pth checkpoint')
    return epochs[-1][1]


def scoring_config(run: Path, checkpoint: Path, mode: str, work_dir: Path):
    """The run's config set to score ``checkpoint`` on its validation split with ``mode``'s
    test-time options."""
    from mmengine.config import Config
    config = run / 'bench_config.py'
    if not config.is_file():
        raise SystemExit(f'{run}: no bench_config.py (not a run folder of bench/accuracy.py)')
    cfg = Config.fromfile(str(config))
    cfg.model.test_cfg.update(mode_options(mode))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.test_cfg = dict(type='TestLoop')
    # runs made before the flip test kept no flip_indices in the samples' metainfo
    for step in cfg.test_dataloader.dataset.pipeline:
        if step.get('type', '').endswith('PackPoseInputs') and 'meta_keys' in step \
                and 'flip_indices' not in step['meta_keys']:
            step['meta_keys'] = tuple(step['meta_keys']) + ('flip_indices', )
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    cfg.load_from = str(checkpoint)
    cfg.resume = False
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{run.name}_{mode}_{time.time_ns()}'
    cfg.default_hooks.pop('visualization', None)
    return cfg


def score(run: Path, checkpoint: Path, mode: str, work_dir: Path) -> Dict[str, Any]:
    from mmengine.runner import Runner
    from turtle_plugin.engine import drop_disabled_default_hooks
    cfg = scoring_config(run, checkpoint, mode, work_dir)
    drop_disabled_default_hooks(cfg)
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    metrics = runner.test()
    seconds = time.perf_counter() - start
    out = {name: float(metrics[key]) for name, key in METRIC_KEYS.items()}
    out['test_seconds'] = round(seconds, 2)
    return out


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started, machine = utc_now(), machine_info()
    out = Path(args.out)
    results = []
    for run in map(Path, args.runs):
        checkpoint = last_checkpoint(run, args.checkpoint)
        results.append(dict(run=str(run), checkpoint=checkpoint.name, modes={
            mode: score(run, checkpoint, mode, out.parent / 'test_time_work')
            for mode in args.modes}))
    keys = (*METRIC_KEYS, 'test_seconds')
    headers = ['run', 'checkpoint', 'mode', 'OKS AP', 'AP50', 'AP75', 'box mAP', 'px error',
               'PCK', 'test s']
    rows = [[Path(r['run']).parent.name + '/' + Path(r['run']).name, r['checkpoint'], mode,
             *(f"{r['modes'][mode][key]:.3f}" for key in keys)]
            for r in results for mode in args.modes]
    mean = {mode: {key: statistics.mean(r['modes'][mode][key] for r in results)
                   for key in keys} for mode in args.modes}
    rows += [['mean', f'{len(results)} runs', mode, *(f'{mean[mode][key]:.3f}' for key in keys)]
             for mode in args.modes]
    print_table(headers, rows, title='Test-time options: the same checkpoints, scored by each')
    payload = result_payload('test_time', started, machine, vars(args), results=results,
                             mean=mean)
    write_json(str(out), payload)
    print(f'wrote {out}')
    return payload


if __name__ == '__main__':
    main()
