"""End-to-end training speed: epoch time with real data loading, model and optimizer together.

Runs ``tools/train.py``'s runner on a config for ``--epochs`` epochs on a YOLO-layout dataset
(default: Tiger-Pose, ``<data-root>/train/images`` + ``labels``), without validation or
checkpoints, and reports per epoch: wall time, images/s, the share of iteration time spent
waiting for data (MMEngine's ``data_time`` / ``time``) and the main process's CPU time (in all
and by thread). The first epoch includes worker start-up, cudnn autotuning and (with
``--compile``) compilation; the summary is the median of the later epochs. Speed switches are
those of ``tools/train.py``: ``--amp [bfloat16]``, ``--channels-last``, ``--compile``;
``--batch`` and ``--workers`` (a count or ``auto``) override the config's. ``--loader-only``
iterates the same DataLoader without the model: the loader's own throughput, to tell a loader
that does not scale with ``--workers`` from a model that is slow.

Example::

    python bench/end_to_end.py configs/tiger_kpt_tiny.py --data-root ../shared/data/tiger_pose \\
        --epochs 3 --device cpu
"""
import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from _common import (REPO_ROOT, cgroup_cpu, machine_info, median, print_table, result_payload,
                     thread_cpu_seconds, utc_now, write_json)

HEADERS = ['epoch', 'seconds', 'img/s', 'data wait %', 'main CPU %', 'iters']


def workers_arg(text: str):
    """A worker count or ``'auto'`` (``turtle_plugin.engine.auto_num_workers``)."""
    return text if text == 'auto' else int(text)


def cache_arg(text: str):
    """A cache size in MiB or ``'auto'`` (sized from the data and the free memory)."""
    return text if text == 'auto' else float(text)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training config, e.g. configs/tiger_kpt_tiny.py')
    parser.add_argument('--data-root', default=str(REPO_ROOT.parent / 'shared/data/tiger_pose'),
                        help='dataset root holding the image folder (default: Tiger-Pose)')
    parser.add_argument('--train-images', default='train/images',
                        help='image folder under --data-root (labels in the sibling labels/)')
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--repeat', type=int, default=1,
                        help='wrap the training set in a RepeatDataset: a small set has too few '
                        'iterations per epoch for the loader to reach its steady state')
    parser.add_argument('--batch', type=int, default=None, help="default: the config's")
    parser.add_argument('--workers', type=workers_arg, default=None,
                        help="a count or 'auto' (usable CPUs - 1, at most 8 and the batch); "
                        "default: the config's")
    parser.add_argument('--amp', nargs='?', const='float16', choices=['float16', 'bfloat16'])
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', action='store_true')
    parser.add_argument('--image-cache-mb', type=cache_arg, default=None,
                        help="the training set's decoded-image cache per worker (MiB, or "
                        "'auto': the whole set when it fits in memory)")
    parser.add_argument('--loader-only', action='store_true',
                        help="iterate the config's training DataLoader alone (no model): the "
                        "loader's own throughput with --workers processes")
    parser.add_argument('--device', choices=('cpu', 'cuda'), default=None,
                        help='default: cuda when available (MMEngine picks it)')
    parser.add_argument('--out', default='bench_results/end_to_end.json')
    return parser.parse_args(argv)


def _train_tool():
    """``tools/train.py`` as a module (its ``parse_args`` / ``build_config`` are the switches)."""
    spec = importlib.util.spec_from_file_location('train_tool', REPO_ROOT / 'tools' / 'train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_cfg(args, work_dir: str):
    """The config exactly as ``tools/train.py`` builds it from the same switches, then pointed
    at ``--data-root`` for ``--epochs`` epochs without validation and checkpoints."""
    from turtle_plugin.engine import resolve_num_workers
    tool = _train_tool()
    argv = [args.config, '--work-dir', work_dir]
    argv += ['--amp', args.amp] if args.amp else []
    argv += ['--channels-last'] if args.channels_last else []
    argv += ['--compile'] if args.compile else []
    cfg = tool.build_config(tool.parse_args(argv))
    dataset = cfg.train_dataloader.dataset
    dataset.data_root = str(Path(args.data_root).resolve())
    dataset.data_yaml = ''
    dataset.data_prefix = dict(img=args.train_images, label='')
    if args.image_cache_mb is not None:
        dataset.image_cache_mb = args.image_cache_mb
    if args.repeat > 1:
        cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=args.repeat,
                                            dataset=dataset)
    if args.batch:
        cfg.train_dataloader.batch_size = args.batch
        if 'paramwise_cfg' in cfg.optim_wrapper:
            cfg.optim_wrapper.paramwise_cfg.batch_size_per_gpu = args.batch
    if args.workers is not None:
        cfg.train_dataloader.num_workers = args.workers
        cfg.train_dataloader.persistent_workers = True
    resolve_num_workers(cfg)  # 'auto' (turns persistent workers off for 0)
    loader = cfg.train_dataloader
    loader.persistent_workers = loader.get('persistent_workers', False) and loader.num_workers > 0
    cfg.train_cfg.max_epochs = args.epochs
    cfg.train_cfg.val_begin = args.epochs + 1  # no validation (not even after the last)
    cfg.train_cfg.pop('dynamic_intervals', None)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1, save_last=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10)
    cfg.default_hooks.pop('close_mosaic')
    cfg.env_cfg.cudnn_benchmark = True
    return cfg


def build_train_loader(cfg):
    """The config's training DataLoader built as ``Runner`` builds it (default scope,
    ``env_cfg.mp_cfg``: start method and OpenCV threads, seeded workers), without the model."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmengine.utils.dl_utils import set_multi_processing
    init_default_scope(cfg.default_scope)
    set_multi_processing(**cfg.env_cfg.mp_cfg, distributed=False)
    return Runner.build_dataloader(cfg.train_dataloader, seed=0)


def time_loader(cfg, epochs: int) -> tuple:
    """Iterate the config's training DataLoader, built as the runner builds it, for ``epochs``
    epochs; returns per-epoch ``seconds`` / ``iters`` and the dataset length."""
    loader = build_train_loader(cfg)
    out = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        cpu = MainCPU()
        start, iters = time.perf_counter(), 0
        for _ in loader:
            iters += 1
        out.append(dict(seconds=time.perf_counter() - start, iters=iters, **cpu.stop()))
    stop_workers(loader)
    return out, len(loader.dataset)


class MainCPU:
    """CPU time of this (the main) process from creation to :meth:`stop`, in all and by
    thread: a training process that keeps several cores busy leaves its workers fewer."""

    def __init__(self):
        self.cpu, self.threads = time.process_time(), thread_cpu_seconds()
        self.throttled = cgroup_cpu()['throttled_s']

    def stop(self, top: int = 6) -> dict:
        """``main_cpu_s``, the ``top`` threads' CPU seconds (``main_thread_cpu_s``) and the
        seconds the container's CPU quota held it back (``cgroup_throttled_s``, None if
        unknown)."""
        after, throttled = thread_cpu_seconds(), cgroup_cpu()['throttled_s']
        per_thread = sorted(((k, v - self.threads.get(k, 0.)) for k, v in after.items()),
                            key=lambda kv: -kv[1])
        return dict(main_cpu_s=time.process_time() - self.cpu, main_threads=len(after),
                    main_thread_cpu_s={k: round(v, 3) for k, v in per_thread[:top] if v > 0},
                    cgroup_throttled_s=None if throttled is None or self.throttled is None
                    else throttled - self.throttled)


def stop_workers(loader) -> None:
    """Shut persistent workers down now: on the 16-core GPU host both runs, their results
    written, outlived their time limit at interpreter exit with 12-14 such workers alive."""
    iterator = getattr(loader, '_iterator', None)
    if iterator is not None and hasattr(iterator, '_shutdown_workers'):
        iterator._shutdown_workers()


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    import torch
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    import turtle_plugin  # noqa: F401  (registers the modules)

    started = utc_now()
    machine = machine_info(('numpy', 'opencv-python', 'torch', 'mmengine', 'mmpose', 'mmdet'))
    cuda = torch.cuda.is_available()
    if cuda:
        machine['gpu'] = torch.cuda.get_device_name()

    class EpochTimer(Hook):
        """Wall time per epoch (CUDA synchronised) and MMEngine's per-iteration times."""
        priority = 'VERY_LOW'

        def __init__(self):
            self.epochs: List[dict] = []

        def before_train_epoch(self, runner) -> None:
            if cuda:
                torch.cuda.synchronize()
            self.epochs.append(dict(start=time.perf_counter(), data_time=0., time=0., iters=0,
                                    cpu=MainCPU()))

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            hub, epoch = runner.message_hub, self.epochs[-1]
            epoch['data_time'] += hub.get_scalar('train/data_time').current()
            epoch['time'] += hub.get_scalar('train/time').current()
            epoch['iters'] += 1

        def after_train_epoch(self, runner) -> None:
            if cuda:
                torch.cuda.synchronize()
            self.epochs[-1]['seconds'] = time.perf_counter() - self.epochs[-1].pop('start')
            self.epochs[-1].update(self.epochs[-1].pop('cpu').stop())

    with tempfile.TemporaryDirectory() as work_dir:
        cfg = build_cfg(args, work_dir)
        if args.loader_only:
            raw_epochs, images = time_loader(cfg, args.epochs)
        else:
            runner = Runner.from_cfg(cfg)
            timer = EpochTimer()
            runner.register_hook(timer)
            runner.train()
            raw_epochs, images = timer.epochs, len(runner.train_dataloader.dataset)
            stop_workers(runner.train_dataloader)

    rows, epochs = [], []
    for i, epoch in enumerate(raw_epochs):
        entry = dict(epoch=i + 1, seconds=epoch['seconds'], iters=epoch['iters'],
                     images=images, images_per_s=images / epoch['seconds'],
                     data_wait_share=epoch['data_time'] / epoch['time'] if epoch.get('time')
                     else None,
                     main_cpu_share=epoch['main_cpu_s'] / epoch['seconds'],
                     main_threads=epoch['main_threads'],
                     cgroup_throttled_s=epoch['cgroup_throttled_s'],
                     main_thread_cpu_s=epoch['main_thread_cpu_s'])
        epochs.append(entry)
        rows.append([i + 1, entry['seconds'], entry['images_per_s'],
                     None if entry['data_wait_share'] is None
                     else 100 * entry['data_wait_share'], 100 * entry['main_cpu_share'],
                     epoch['iters']])
    later = epochs[1:] or epochs
    summary = dict(epoch_seconds=median([e['seconds'] for e in later]),
                   images_per_s=median([e['images_per_s'] for e in later]),
                   data_wait_share=None if args.loader_only else
                   median([e['data_wait_share'] or 0. for e in later]),
                   main_cpu_share=median([e['main_cpu_share'] for e in later]))
    rows.append(['median of later', summary['epoch_seconds'], summary['images_per_s'],
                 None if args.loader_only else 100 * summary['data_wait_share'],
                 100 * summary['main_cpu_share'], None])
    settings = dict(vars(args), batch_size=cfg.train_dataloader.batch_size,
                    num_workers=cfg.train_dataloader.num_workers, device='cuda' if cuda else 'cpu',
                    torch_threads=torch.get_num_threads())
    payload = result_payload('end_to_end', started, machine, settings, images=images,
                             epochs=epochs, summary=summary)
    print_table(HEADERS, rows, title=f"{Path(args.config).name} on {args.data_root}: {images} "
                f"images, batch {settings['batch_size']}, {settings['num_workers']} workers, "
                + ('loader only' if args.loader_only else settings['device']))
    print(f"main process threads by CPU seconds, last epoch: {epochs[-1]['main_thread_cpu_s']}")
    print(f'\nwritten to {write_json(args.out, payload)}')
    return payload


if __name__ == '__main__':
    main()
