"""Evaluate a checkpoint: COCO box mAP (and keypoint OKS mAP for keypoint models).

    python tools/test.py configs/turtle_kpt.py work_dirs/turtle_kpt/epoch_300.pth
    python tools/test.py configs/turtle_kpt.py CKPT --show-dir vis   # draw every test image
    bash tools/dist_test.sh configs/turtle_kpt.py CKPT 4

``--show-dir`` switches on the config's ``default_hooks.visualization`` (MMPose's or
MMDetection's hook, as their test.py do) and writes one drawing per test image into
``work_dir/<timestamp>/DIR`` (an absolute DIR is used as it is): boxes, keypoints and skeleton
of the instances scoring at least ``--score-thr`` for keypoint models; for detection models
MMDetection's ground truth | prediction pair.
"""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.runner import Runner

# visualization hook type -> (its on/off switch, its test output folder argument)
VISUALIZATION_HOOK_KEYS = {
    'KptVisualizationHook': ('enable', 'out_dir'),
    'PoseVisualizationHook': ('enable', 'out_dir'),
    'DetVisualizationHook': ('draw', 'test_out_dir'),
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a turtle_plugin model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save evaluation results and logs')
    parser.add_argument('--out', help='dump the raw predictions to this pickle file')
    parser.add_argument(
        '--show-dir',
        help='draw the predictions on every test image and save the drawings in this dir '
        '(relative to work_dir/<timestamp>)')
    parser.add_argument(
        '--score-thr', type=float,
        help='with --show-dir, draw instances scoring at least this (default: the hook\'s, 0.3)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, e.g. test_dataloader.batch_size=1')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_visualization(cfg: Config, show_dir: str, score_thr: Optional[float] = None) -> None:
    """Switch on ``cfg.default_hooks.visualization`` and point its test output at ``show_dir``.

    Args:
        cfg (Config): the test config; updated in place.
        show_dir (str): the hook's test output folder.
        score_thr (float, optional): the hook's ``score_thr``; None keeps the config's.
    """
    hook = cfg.get('default_hooks', ConfigDict()).get('visualization')
    if hook is None:
        raise ValueError(f'--show-dir needs default_hooks.visualization in {cfg.filename}, e.g. '
                         "dict(type='KptVisualizationHook') or dict(type='DetVisualizationHook')")
    hook_type = str(hook.get('type', '')).split('.')[-1]
    if hook_type not in VISUALIZATION_HOOK_KEYS:
        raise ValueError(f'--show-dir: unknown visualization hook {hook.get("type")!r} in '
                         f'{cfg.filename}; expected one of {sorted(VISUALIZATION_HOOK_KEYS)}')
    switch, out_dir = VISUALIZATION_HOOK_KEYS[hook_type]
    hook[switch] = True
    hook[out_dir] = show_dir
    if score_thr is not None:
        hook['score_thr'] = score_thr


def build_config(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    from turtle_plugin.engine import drop_disabled_default_hooks, resolve_num_workers
    resolve_num_workers(cfg)  # num_workers='auto': from the CPUs this process may use
    drop_disabled_default_hooks(cfg)  # default_hooks.NAME=None switches off any of them
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show_dir is not None:
        enable_visualization(cfg, args.show_dir, args.score_thr)
    elif args.score_thr is not None:
        raise ValueError('--score-thr only applies with --show-dir')
    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), '--out must end with .pkl or .pickle'
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(cfg.test_evaluator, dict) \
            else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='DumpResults', out_file_path=args.out))
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Test the checkpoint; returns the metrics."""
    args = parse_args(argv)
    cfg = build_config(args)
    from turtle_plugin.engine import setup_cpu_distributed
    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    return runner.test()


if __name__ == '__main__':
    main()
