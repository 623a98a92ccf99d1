"""Flip test on trained runs: the same checkpoint scored with and without ``flip_test``.

``model.test_cfg.flip_test=True`` runs every validation image and its horizontal mirror and
averages the two predictions anchor by anchor (keypoints paired by the metainfo's
``flip_indices``; ``YOLOv7HeadCore.predict_flip_by_feat``). This script takes run folders of
``bench/accuracy.py`` (each holds the ``bench_config.py`` it trained with and its checkpoints),
scores the last checkpoint of each on its validation split twice, with the run's own evaluator
(``KptBoxCocoMetric`` against the bench's ground-truth file), and reports OKS AP, AP50, AP75, box
mAP, mean pixel error and PCK of both, and the test wall time, per run and as means. Nothing is
trained; the checkpoints are the runs' own, so the two columns differ only by the flip test.
Example (the default recipe's two mirror-mouse runs at 300 epochs)::

    python bench/flip_test.py bench_results/acc_mouse300_init/ours_seed0 \\
        bench_results/acc_mouse300_init/ours_seed1 --out bench_results/flip_test.json
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
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint file name in every run folder (default: the last '
                        'epoch_N.pth)')
    parser.add_argument('--out', default='bench_results/flip_test.json', help='JSON output')
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    return parser.parse_args(argv)


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


def scoring_config(run: Path, checkpoint: Path, flip: bool, work_dir: Path):
    """The run's config set to score ``checkpoint`` on its validation split, with or without
    the flip test."""
    from mmengine.config import Config
    config = run / 'bench_config.py'
    if not config.is_file():
        raise SystemExit(f'{run}: no bench_config.py (not a run folder of bench/accuracy.py)')
    cfg = Config.fromfile(str(config))
    cfg.model.test_cfg.flip_test = flip
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
    cfg.experiment_name = f'{run.name}_{"flip" if flip else "plain"}_{time.time_ns()}'
    cfg.default_hooks.pop('visualization', None)
    return cfg


def score(run: Path, checkpoint: Path, flip: bool, work_dir: Path) -> Dict[str, Any]:
    from mmengine.runner import Runner
    from turtle_plugin.engine import drop_disabled_default_hooks
    cfg = scoring_config(run, checkpoint, flip, work_dir)
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
        row = dict(run=str(run), checkpoint=checkpoint.name)
        for flip in (False, True):
            row['flip' if flip else 'plain'] = score(run, checkpoint, flip,
                                                      out.parent / 'flip_test_work')
        results.append(row)
    headers = ['run', 'checkpoint', 'OKS AP', 'flip', 'AP50', 'flip', 'AP75', 'flip', 'box mAP',
               'flip', 'px error', 'flip', 'PCK', 'flip', 'test s', 'flip']
    rows = []
    for r in results:
        cells = [Path(r['run']).parent.name + '/' + Path(r['run']).name, r['checkpoint']]
        for key in (*METRIC_KEYS, 'test_seconds'):
            cells += [f"{r['plain'][key]:.3f}", f"{r['flip'][key]:.3f}"]
        rows.append(cells)
    mean = {key: dict(plain=statistics.mean(r['plain'][key] for r in results),
                      flip=statistics.mean(r['flip'][key] for r in results))
            for key in (*METRIC_KEYS, 'test_seconds')}
    print_table(headers, rows, title='Flip test: the same checkpoints, plain / flip')
    print('mean over runs: ' + ', '.join(
        f"{k} {v['plain']:.3f} -> {v['flip']:.3f}" for k, v in mean.items()))
    payload = result_payload('flip_test', started, machine, vars(args), results=results,
                             mean=mean)
    write_json(str(out), payload)
    print(f'wrote {out}')
    return payload


if __name__ == '__main__':
    main()
