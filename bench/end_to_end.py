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

After the real epochs, in the same run, the **model-only step** of the same runner: its model
and optimizer wrapper (AMP, channels-last, compile as configured), fed real batches of the last
epoch (``--model-batches``, the first full ones, put through the data preprocessor once and
reused), for as many iterations as a real epoch had (or ``--model-iters``) after one untimed
step, synchronised at the two ends only. The step is MMEngine's ``train_step`` without the data
preprocessor -- ``optim_context`` -> loss -> ``parse_losses`` -> ``update_params``, what
``bench/train_step.py`` times -- so the ratio real epoch / model-only step (images/s, median
of the later epochs) is the share of the model's speed that the whole loop keeps: data loading,
the host-to-device copy and the hooks (EMA update, logging) make the difference. It runs after
the real epochs, so it cannot change them.

With ``--yolov7-root`` (a checkout of the original pose branch) and ``--yolov7-tiny-cfg``
(as ``bench/accuracy.py``), the original's own ``train.py`` then trains on the same images
(``--repeat`` times each), epochs, batch, image size, workers and device (its own fp16 AMP on
CUDA) through ``bench/yolov7_pose_peer.py --stage train --skip-test --val-interval 1``. Its
per-epoch wall time is the gap between consecutive ``epoch_N.pt`` copies of its ``last.pt``
(each epoch includes its end-of-epoch checkpoint saves); the first epoch, and any epoch holding
one of the 33 training batches its ``train.py`` draws to jpg files, are warm-up, outside the
median. Its log goes beside ``--out`` (``<out>.yolov7.log``).

Example::

    python bench/end_to_end.py configs/tiger_kpt_tiny.py --data-root ../shared/data/tiger_pose \\
        --epochs 3 --device cpu
    python bench/end_to_end.py configs/tiger_kpt_tiny.py --data-root ../shared/data/tiger_pose \\
        --epochs 3 --device cpu --yolov7-root /tmp/yolov7_pose \\
        --yolov7-tiny-cfg /tmp/yolov7-tiny.yaml
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from _common import (REPO_ROOT, add_config_data_arguments, cgroup_cpu, machine_info, median,
                     peer_info, print_table, result_payload, thread_cpu_seconds, utc_now,
                     write_json)

HEADERS = ['epoch', 'seconds', 'img/s', 'data wait %', 'main CPU %', 'iters']
ORIGINAL_HEADERS = ['yolov7 epoch', 'seconds', 'img/s', 'plotted batches']


def workers_arg(text: str):
    """A worker count or ``'auto'`` (``turtle_plugin.engine.auto_num_workers``)."""
    return text if text == 'auto' else int(text)


def cache_arg(text: str):
    """A cache size in MiB or ``'auto'`` (sized from the data and the free memory)."""
    return text if text == 'auto' else float(text)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_config_data_arguments(parser)
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
    parser.add_argument('--model-iters', type=int, default=None,
                        help='model-only step: timed iterations (default: those of a real '
                        'epoch)')
    parser.add_argument('--model-batches', type=int, default=2,
                        help='model-only step: real batches it cycles through (the first full '
                        'ones of the last epoch)')
    parser.add_argument('--yolov7-root', default=None,
                        help="checkout of the original YOLOv7 pose branch: also time its own "
                        'train.py epoch on the same data (bench/yolov7_pose_peer.py)')
    parser.add_argument('--yolov7-tiny-cfg', default=None,
                        help="the original main branch's cfg/training/yolov7-tiny.yaml (with "
                        '--yolov7-root)')
    parser.add_argument('--out', default='bench_results/end_to_end.json')
    args = parser.parse_args(argv)
    if bool(args.yolov7_root) != bool(args.yolov7_tiny_cfg):
        parser.error('--yolov7-root and --yolov7-tiny-cfg go together')
    if args.yolov7_root and (args.loader_only or args.epochs < 2):
        parser.error('timing the original needs real epochs, at least 2 (its first is warm-up)')
    if args.model_batches < 1 or (args.model_iters is not None and args.model_iters < 1):
        parser.error('--model-batches and --model-iters must be at least 1')
    return args


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


def time_model_only(runner, batches: Sequence[dict], iters: int, cuda: bool) -> dict:
    """The runner's model-only step on real batches: images/s of ``iters`` steps.

    Args:
        runner: a runner that has trained (its model, optimizer wrapper and speed hooks set).
        batches (Sequence[dict]): real batches as the loader gave them; each is put through
            the model's data preprocessor once and the steps cycle through them.
        iters (int): timed steps, after one untimed step.
        cuda (bool): synchronise the device before and after the timed steps.

    Returns:
        dict: ``iters``, ``images``, ``seconds``, ``images_per_s``, ``batches``,
        ``warmup_iters`` and the main process's CPU time (:class:`MainCPU`).
    """
    import torch
    from mmengine.model import is_model_wrapper
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    wrapper = runner.optim_wrapper
    model.train()
    prepared = [model.data_preprocessor(batch, True) for batch in batches]

    def step(data: dict) -> None:  # MMEngine's BaseModel.train_step after the preprocessor
        with wrapper.optim_context(model):
            losses = model(**data, mode='loss')
        parsed, _ = model.parse_losses(losses)
        wrapper.update_params(parsed)

    step(prepared[0])
    if cuda:
        torch.cuda.synchronize()
    cpu, start, images = MainCPU(), time.perf_counter(), 0
    for i in range(iters):
        data = prepared[i % len(prepared)]
        step(data)
        images += len(data['inputs'])
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return dict(iters=iters, images=images, seconds=seconds, images_per_s=images / seconds,
                batches=len(prepared), warmup_iters=1, **cpu.stop())


def _config_file(path: str) -> str:
    """A path of a config (relative to the repository, as the configs write them)."""
    return str(Path(path) if Path(path).is_absolute() else REPO_ROOT / path)


def original_command(args, cfg, work_dir: Path, cuda: bool) -> List[str]:
    """``bench/yolov7_pose_peer.py --stage train`` on the data, epochs, batch, image size,
    workers and device of our run, timing only (no test pass, a checkpoint copy per epoch)."""
    dataset = cfg.train_dataloader.dataset
    if dataset.get('type') == 'RepeatDataset':
        dataset = dataset.dataset
    img_scale = cfg.get('img_scale')
    if img_scale is None:
        raise SystemExit(f'{args.config} has no img_scale: the original needs the image size')
    metainfo = dataset.metainfo
    if not isinstance(metainfo, dict) or 'from_file' not in metainfo:
        raise SystemExit(f'{args.config}: the original needs the dataset metainfo as a file '
                         "(dict(from_file=...)) for its flip indices and sigmas")
    loader = cfg.train_dataloader
    return [sys.executable, str(REPO_ROOT / 'bench' / 'yolov7_pose_peer.py'),
            '--stage', 'train', '--skip-test', '--val-interval', '1',
            '--yolov7-root', str(Path(args.yolov7_root).resolve()),
            '--model-cfg', str(Path(args.yolov7_tiny_cfg).resolve()),
            '--work-dir', str(work_dir), '--data-root', str(Path(args.data_root).resolve()),
            # its train.py builds a validation loader it never runs (--skip-test): any images
            '--train-images', args.train_images, '--val-images', args.train_images,
            '--metainfo', _config_file(metainfo['from_file']),
            '--epochs', str(args.epochs), '--batch', str(loader.batch_size),
            '--img-size', str(max(img_scale)), '--workers', str(loader.num_workers),
            '--repeat', str(args.repeat), '--seed', '0', '--device', '0' if cuda else 'cpu']


def time_original(args, cfg, work_dir: Path, cuda: bool) -> dict:
    """Run the original's ``train.py`` (:func:`original_command`) and read its epoch times
    (``yolov7_pose_peer.epoch_wall_times``); its output goes to ``<out>.yolov7.log``."""
    from yolov7_pose_peer import epoch_wall_times
    command = original_command(args, cfg, work_dir, cuda)
    log = Path(args.out).with_suffix('.yolov7.log')
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f'\ntiming the original YOLOv7 (log: {log})', flush=True)
    with open(log, 'w') as out:
        rc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode
    info = dict(command=command, log=str(log), tiny_cfg=str(Path(args.yolov7_tiny_cfg).resolve()))
    if rc != 0:
        tail = log.read_text(errors='replace').splitlines()[-15:]
        print(f'the original YOLOv7 failed (exit {rc}):\n' + '\n'.join(tail), flush=True)
        return dict(info, error=f'exit {rc}: {tail[-1] if tail else ""}', epochs=[],
                    summary=summarise_original([]))
    setup = json.loads((work_dir / 'peer_setup.json').read_text())
    images = setup['counts']['train']
    epochs = epoch_wall_times(work_dir / 'train' / 'weights', images,
                              cfg.train_dataloader.batch_size)
    return dict(info, images=images, epochs=epochs, summary=summarise_original(epochs))


def summarise_original(epochs: Sequence[dict]) -> dict:
    """Median seconds and images/s of the original's timed epochs (from epoch 2) that drew no
    batch to a jpg; of all of them, flagged ``includes_plotting``, when every one did."""
    used = [e for e in epochs if not e['plotted_batches']] or list(epochs)
    return dict(epoch_seconds=median([e['seconds'] for e in used]) if used else None,
                images_per_s=median([e['images_per_s'] for e in used]) if used else None,
                epochs_used=[e['epoch'] for e in used],
                includes_plotting=any(e['plotted_batches'] for e in used))


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    return numerator / denominator if numerator and denominator else None


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

        def __init__(self, keep: int):
            self.epochs: List[dict] = []
            self.keep = keep
            self.batches: List[dict] = []  # the last epoch's first full ones (model-only step)

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
            full = len(data_batch['inputs']) == runner.train_dataloader.batch_size
            if runner.epoch == runner.max_epochs - 1 and full and len(self.batches) < self.keep:
                self.batches.append(data_batch)

        def after_train_epoch(self, runner) -> None:
            if cuda:
                torch.cuda.synchronize()
            self.epochs[-1]['seconds'] = time.perf_counter() - self.epochs[-1].pop('start')
            self.epochs[-1].update(self.epochs[-1].pop('cpu').stop())

    model_only = None
    with tempfile.TemporaryDirectory() as work_dir:
        cfg = build_cfg(args, work_dir)
        if args.loader_only:
            raw_epochs, images = time_loader(cfg, args.epochs)
        else:
            runner = Runner.from_cfg(cfg)
            timer = EpochTimer(args.model_batches)
            runner.register_hook(timer)
            runner.train()
            raw_epochs, images = timer.epochs, len(runner.train_dataloader.dataset)
            stop_workers(runner.train_dataloader)  # idle workers during the model-only step
            if not timer.batches:
                raise SystemExit('no full batch in the last epoch for the model-only step: '
                                 'the training set is smaller than one batch')
            later_iters = median([e['iters'] for e in raw_epochs[1:] or raw_epochs])
            model_only = time_model_only(runner, timer.batches,
                                         args.model_iters or int(later_iters), cuda)
            del runner, timer

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
    summary.update(model_only_images_per_s=None, real_over_model_only=None,
                   yolov7_images_per_s=None, ours_over_yolov7=None)
    if model_only is not None:
        model_only['main_cpu_share'] = model_only['main_cpu_s'] / model_only['seconds']
        summary['model_only_images_per_s'] = model_only['images_per_s']
        summary['real_over_model_only'] = summary['images_per_s'] / model_only['images_per_s']
        rows.append(['model-only step', model_only['seconds'], model_only['images_per_s'], None,
                     100 * model_only['main_cpu_share'], model_only['iters']])
        rows.append(['real / model-only', None, f"{summary['real_over_model_only']:.3f}",
                     None, None, None])
    settings = dict(vars(args), batch_size=cfg.train_dataloader.batch_size,
                    num_workers=cfg.train_dataloader.num_workers, device='cuda' if cuda else 'cpu',
                    torch_threads=torch.get_num_threads())
    root = Path(args.yolov7_root) if args.yolov7_root else None
    payload = result_payload('end_to_end', started, machine, settings, images=images,
                             epochs=epochs, model_only=model_only, summary=summary,
                             original=peer_info(root, False))
    print_table(HEADERS, rows, title=f"{Path(args.config).name} on {args.data_root}: {images} "
                f"images, batch {settings['batch_size']}, {settings['num_workers']} workers, "
                + ('loader only' if args.loader_only else settings['device']))
    print(f"main process threads by CPU seconds, last epoch: {epochs[-1]['main_thread_cpu_s']}")
    print(f'\nwritten to {write_json(args.out, payload)}', flush=True)
    if root is None:
        return payload

    # ours is written first: a run stopped while the original trains keeps our figures
    with tempfile.TemporaryDirectory() as work_dir:
        original = time_original(args, cfg, Path(work_dir), cuda)
    payload['original'] = dict(peer_info(root, True), **original)
    summary['yolov7_images_per_s'] = original['summary']['images_per_s']
    summary['ours_over_yolov7'] = _ratio(summary['images_per_s'],
                                         summary['yolov7_images_per_s'])
    payload['finished'] = utc_now()
    rows = [[e['epoch'], e['seconds'], e['images_per_s'], e['plotted_batches']]
            for e in original['epochs']]
    rows.append([f"median of {original['summary']['epochs_used']}",
                 original['summary']['epoch_seconds'], summary['yolov7_images_per_s'], None])
    rows.append(['ours / yolov7', None, None if summary['ours_over_yolov7'] is None
                 else f"{summary['ours_over_yolov7']:.2f}x", None])
    print_table(ORIGINAL_HEADERS, rows, title=f"the original YOLOv7's train.py on the same data: "
                f"{original.get('images')} images per epoch (epoch time between its epoch "
                'checkpoints, saves included; epoch 1 and plotting epochs are warm-up)')
    print(f'\nwritten to {write_json(args.out, payload)}')
    return payload


if __name__ == '__main__':
    main()
