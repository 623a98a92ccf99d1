"""Train a turtle_plugin model (detection or keypoints) from a config.

    python tools/train.py configs/turtle_kpt.py [--work-dir DIR] [--resume [CKPT]]
        [--amp [bfloat16]] [--channels-last] [--compile]
    python tools/train.py configs/turtle_kpt.py --tensorboard   # + TensorBoard event files
    bash tools/dist_train.sh configs/turtle_kpt.py 4      # DDP on 4 GPUs (torchrun)
    bash tools/dist_train.sh configs/turtle_kpt.py 4 --sync-bn   # ... with SyncBatchNorm

``--tensorboard`` adds MMEngine's ``TensorboardVisBackend`` to ``visualizer.vis_backends``: the
logged scalars (losses, lr, coco/AP ...) and the visualizer's images also go to event files in
``work_dir/<timestamp>/vis_data``. ``--sync-bn`` sets ``cfg.sync_bn``, with which MMEngine's
runner converts every BatchNorm to SyncBatchNorm when it wraps the model for distributed
training (non-distributed runs keep BatchNorm). Neither works on CPU, so it is refused for CPU
(gloo) runs: DDP will not wrap a CPU model holding torch's SyncBatchNorm, and mmcv's has no CPU
kernels.
"""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a turtle_plugin model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the latest one in the work dir if no '
        'path is given')
    parser.add_argument(
        '--amp', nargs='?', const='float16', choices=['float16', 'bfloat16'],
        help='automatic mixed precision (AmpOptimWrapper; loss math stays float32); '
        '`--amp` alone is float16 with dynamic loss scaling, `--amp bfloat16` needs a GPU '
        'with bf16 support')
    parser.add_argument(
        '--channels-last', action='store_true',
        help='train in channels-last memory format (ChannelsLastHook)')
    parser.add_argument(
        '--compile', action='store_true',
        help='torch.compile backbone, neck and head convs (CompileModelHook; the first '
        'iterations take minutes)')
    parser.add_argument(
        '--tensorboard', action='store_true',
        help='also write TensorBoard event files (adds TensorboardVisBackend to '
        'visualizer.vis_backends)')
    parser.add_argument(
        '--sync-bn', nargs='?', const='torch', choices=['torch', 'mmcv'],
        help="distributed runs on GPUs: convert BatchNorm to torch's (default) or mmcv's "
        'SyncBatchNorm (sets cfg.sync_bn)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, e.g. train_dataloader.batch_size=16')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def add_tensorboard(cfg: Config) -> None:
    """Append MMEngine's ``TensorboardVisBackend`` to ``cfg.visualizer.vis_backends`` (once).

    Args:
        cfg (Config): the training config; updated in place.
    """
    visualizer = cfg.get('visualizer') or dict(type='Visualizer', name='visualizer')
    backends = list(visualizer.get('vis_backends') or [dict(type='LocalVisBackend')])
    if not any(str(b.get('type', '')).endswith('TensorboardVisBackend') for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))
    visualizer['vis_backends'] = backends
    cfg.visualizer = visualizer


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
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = args.amp
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    custom_hooks = cfg.get('custom_hooks', None) or []
    switches = ((args.channels_last, 'ChannelsLastHook'), (args.compile, 'CompileModelHook'))
    for flag, hook in switches:
        if flag and not any(h.get('type') == hook for h in custom_hooks):
            custom_hooks.append(dict(type=hook))
    cfg.custom_hooks = custom_hooks
    if args.tensorboard:
        add_tensorboard(cfg)
    if args.sync_bn is not None:
        cfg.sync_bn = args.sync_bn
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> Runner:
    """Train; returns the runner."""
    args = parse_args(argv)
    cfg = build_config(args)
    if cfg.get('sync_bn') is not None and args.launcher != 'none' \
            and not torch.cuda.is_available():
        raise ValueError(f'sync_bn={cfg.sync_bn!r} needs GPUs: DDP does not wrap a CPU model '
                         "holding torch's SyncBatchNorm and mmcv's has no CPU kernels; train "
                         'without --sync-bn (cfg.sync_bn=None) on CPU')
    # Importing the plugin registers its modules and MMEngine's checkpoint types for torch.load.
    from turtle_plugin.engine import setup_cpu_distributed
    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    main()
