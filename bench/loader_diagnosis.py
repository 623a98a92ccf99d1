"""Why a DataLoader does not scale with its workers: per-worker evidence from inside the workers.

Builds a config's training DataLoader exactly as the runner does (``end_to_end.py``'s
``build_cfg`` + ``build_train_loader``) for each worker count of ``--workers`` and iterates it
for ``--epochs`` epochs. Besides the loader's images/s (and per worker), every sample carries
back from the worker that made it:

* wall, process CPU and thread CPU time of the whole pipeline and of each transform (a mosaic's
  own image loads are listed as ``KptMosaic>KptLoadImage``);
* the worker's minor/major page faults and voluntary/involuntary context switches during it;
* the worker's work between two samples (collate, pickling, queue) in wall and CPU time;
* once per worker, and again whenever its thread count changes: its OS threads (``comm`` and the
  Python thread name where there is one), torch / OpenCV / OpenBLAS thread settings and its CPU
  affinity.

How to read it: **wall / CPU** of a sample's pipeline above 1 means the worker was runnable but
had no CPU (oversubscription: more busy threads than cores; involuntary context switches rise
with it). A ratio near 1 with **CPU ms per sample** above the 1-worker figure means each
CPU-second does less work (shared caches and memory bandwidth, hyper-threads sharing a core,
page faults: see the faults column). The main process's CPU time and threads are reported per
epoch too (pin-memory thread, OpenMP pool).

``--taskset CPUS`` pins the main process (and so the workers it forks) to CPUs, reproducing
oversubscription on a small machine; ``--main-load N`` runs torch matrix products on N
intra-op threads in a background thread of the main process during the epochs, a main process
whose OpenMP pool competes with the workers.

Example::

    python bench/loader_diagnosis.py configs/tiger_kpt_tiny.py --workers 1 2 \\
        --data-root ../shared/data/tiger_pose --repeat 2
    python bench/loader_diagnosis.py configs/tiger_kpt_tiny.py --workers 4 --taskset 0 \\
        --main-load 1
"""
import argparse
import json
import os
import resource
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from _common import (add_config_data_arguments, machine_info, print_table, result_payload,
                     utc_now, write_json)
from end_to_end import (MainCPU, build_cfg, build_train_loader, cache_arg, stop_workers,
                        workers_arg)

PROBE_KEY = 'loader_probe'  # the sample key the worker's measurements travel in (a JSON str)
SWEEP_HEADERS = ['workers', 'img/s', 'img/s/worker', 'wall ms/sample', 'CPU ms/sample',
                 'wall/CPU', 'faults/sample', 'invol. cs/sample', 'worker busy %',
                 'main CPU %', 'worker threads']
TRANSFORM_HEADERS = ['workers', 'transform', 'wall ms', 'thread CPU ms', 'wall/CPU']


def parse_cpus(text: str) -> List[int]:
    """CPU list as ``taskset -c`` takes it: ``'0'``, ``'0-3'``, ``'0,2,4-5'``."""
    cpus = []
    for part in text.split(','):
        first, _, last = part.partition('-')
        cpus += range(int(first), int(last or first) + 1)
    if not cpus:
        raise argparse.ArgumentTypeError(f'no CPUs in {text!r}')
    return sorted(set(cpus))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_config_data_arguments(parser)
    parser.add_argument('--workers', nargs='+', type=workers_arg, default=[1, 2],
                        help="worker counts to sweep; 'auto' is the plugin's default for this "
                        'machine and batch size')
    parser.add_argument('--epochs', type=int, default=2,
                        help='epochs per worker count; the first (worker start-up, cache fill) '
                        'is reported apart')
    parser.add_argument('--repeat', type=int, default=1,
                        help='wrap the training set in a RepeatDataset (longer epochs)')
    parser.add_argument('--batch', type=int, default=None, help="default: the config's")
    parser.add_argument('--image-cache-mb', type=cache_arg, default=None,
                        help="decoded-image cache per worker (MiB or 'auto'); default: the "
                        "config's")
    parser.add_argument('--taskset', type=parse_cpus, default=None, metavar='CPUS',
                        help="pin the main process and its workers to these CPUs ('0', '0-3')")
    parser.add_argument('--main-load', type=int, default=0, metavar='THREADS',
                        help='torch matrix products on THREADS intra-op threads in the main '
                        'process during the epochs (0: none)')
    parser.add_argument('--out', default='bench_results/loader_diagnosis.json')
    return parser.parse_args(argv)


# ------------------------------------------------------------------ inside a worker
def _openblas_threads() -> Optional[int]:
    """OpenBLAS's thread count in this process (NumPy's bundled copy), None if not loaded."""
    import ctypes
    try:
        libs = {line.split()[-1] for line in Path('/proc/self/maps').read_text().splitlines()
                if 'openblas' in line.lower()}
    except OSError:
        return None
    for lib in sorted(libs):
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for name in ('openblas_get_num_threads64_', 'openblas_get_num_threads',
                     'scipy_openblas_get_num_threads64_', 'scipy_openblas_get_num_threads'):
            func = getattr(handle, name, None)
            if func is not None:
                return int(func())
    return None


def os_threads() -> List[str]:
    """This process's OS threads as ``comm`` names, with the Python thread's name where the
    thread is a Python one (e.g. ``python [QueueFeederThread]``)."""
    py_names = {t.native_id: t.name for t in threading.enumerate()}
    out = []
    for task in sorted(Path('/proc/self/task').iterdir(), key=lambda p: int(p.name)):
        try:
            comm = (task / 'comm').read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        name = py_names.get(int(task.name))
        out.append(f'{comm} [{name}]' if name else comm)
    return out


def thread_settings() -> Dict[str, Any]:
    """What decides how many threads this process computes on."""
    import cv2
    import torch
    return dict(pid=os.getpid(), threads=os_threads(), torch_threads=torch.get_num_threads(),
                torch_interop_threads=torch.get_num_interop_threads(),
                cv2_threads=cv2.getNumThreads(), openblas_threads=_openblas_threads(),
                affinity=sorted(os.sched_getaffinity(0)),
                omp_env={k: v for k, v in os.environ.items()
                         if k.startswith(('OMP_', 'OPENBLAS_', 'MKL_', 'GOMP_'))})


def _counters() -> tuple:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return (time.perf_counter(), time.process_time(), time.thread_time(), ru.ru_minflt,
            ru.ru_majflt, ru.ru_nvcsw, ru.ru_nivcsw)


class _TimedTransform:
    """A transform whose wall and thread CPU time add up in ``times[name]``."""

    def __init__(self, name: str, transform, times: Dict[str, List[float]]):
        self.name, self.transform, self.times = name, transform, times

    def __call__(self, results):
        wall, cpu = time.perf_counter(), time.thread_time()
        out = self.transform(results)
        entry = self.times[self.name]
        entry[0] += time.perf_counter() - wall
        entry[1] += time.thread_time() - cpu
        return out

    def __getattr__(self, name):  # e.g. KptMosaic's attributes read by hooks
        if name == 'transform':  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.transform, name)


class PipelineProbe:
    """Wraps a dataset's pipeline: measures every run in the process that runs it and hands the
    measurements of each produced sample back in ``sample[PROBE_KEY]`` (a JSON string, so the
    default collate passes it through as a list)."""

    def __init__(self, pipeline, dataset=None):
        self.pipeline, self.dataset = pipeline, dataset
        self.times: Dict[str, List[float]] = defaultdict(lambda: [0., 0.])
        for owner, prefix in [(pipeline, '')] + [
                (t.pre_transform, type(t).__name__ + '>') for t in pipeline.transforms
                if getattr(t, 'pre_transform', None) is not None]:
            owner.transforms = [t if isinstance(t, _TimedTransform) else
                                _TimedTransform(prefix + type(t).__name__, t, self.times)
                                for t in owner.transforms]
        self._pid = None

    def _reset(self) -> None:
        """Start of a process (the first call in a worker, after fork)."""
        from torch.utils.data import get_worker_info
        info = get_worker_info()
        self._pid, self._worker = os.getpid(), -1 if info is None else info.id
        self._pending = [0.] * 7  # pipeline runs not yet handed back (a dropped sample)
        self._threads = -1
        self._last_end = None
        self._count = 0
        self.times.clear()

    def __call__(self, results):
        if self._pid != os.getpid():
            self._reset()
        start = _counters()
        gap = None if self._last_end is None else [a - b for a, b in
                                                   zip(start[:2], self._last_end[:2])]
        out = self.pipeline(results)
        end = _counters()
        self._last_end = end
        self._pending = [p + e - s for p, e, s in zip(self._pending, end, start)]
        if out is None:
            return out
        self._count += 1
        wall, cpu, thread, minflt, majflt, nvcsw, nivcsw = self._pending
        probe = dict(worker=self._worker, pid=self._pid, n=self._count, wall=wall, cpu=cpu,
                     thread=thread, minflt=minflt, majflt=majflt, nvcsw=nvcsw, nivcsw=nivcsw,
                     gap=gap, transforms={k: list(v) for k, v in self.times.items()},
                     cache_bytes=getattr(getattr(self.dataset, 'image_cache', None),
                                         'max_bytes', None))
        nthreads = len(os.listdir('/proc/self/task'))
        if nthreads != self._threads:
            self._threads = nthreads
            probe['settings'] = thread_settings()
        self._pending = [0.] * 7
        self.times.clear()
        out[PROBE_KEY] = json.dumps(probe)
        return out


def _innermost(dataset):
    """The dataset that owns the pipeline (through RepeatDataset and similar wrappers)."""
    while not hasattr(dataset, 'pipeline') and hasattr(dataset, 'dataset'):
        dataset = dataset.dataset
    return dataset


# ------------------------------------------------------------------ in the main process
class MainLoad:
    """Torch matrix products on ``threads`` intra-op threads, in a background thread."""

    def __init__(self, threads: int, size: int = 384):
        self.threads, self.size = threads, size
        self.products = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='main-load', daemon=True)

    def _run(self) -> None:
        import torch
        # here, not in the starting thread: OpenMP's thread count is a per-thread setting
        torch.set_num_threads(self.threads)
        a = torch.randn(self.size, self.size)
        while not self._stop.is_set():
            torch.mm(a, a)
            self.products += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _epoch(loader, epoch: int, load: Optional[MainLoad]) -> Dict[str, Any]:
    loader.sampler.set_epoch(epoch)
    main_cpu = MainCPU()
    wall = time.perf_counter()
    iterator = iter(loader)  # forks the workers (first epoch, persistent workers)
    if load is not None and not load._thread.is_alive():
        load.start()
    probes, batches = [], 0
    for batch in iterator:
        batches += 1
        probes += [json.loads(p) for p in batch.get(PROBE_KEY, ())]
    wall = time.perf_counter() - wall
    return dict(epoch=epoch + 1, seconds=wall, batches=batches, images=len(probes),
                images_per_s=len(probes) / wall, **main_cpu.stop(), probes=probes)


def summarise(epoch: Dict[str, Any], workers: int) -> Dict[str, Any]:
    """Per-sample means over an epoch's probes and per-worker figures."""
    probes = epoch['probes']
    n = max(len(probes), 1)

    def mean(key):
        return sum(p[key] for p in probes) / n

    gaps = [p['gap'] for p in probes if p['gap'] is not None]
    busy_cpu = sum(p['cpu'] for p in probes) + sum(g[1] for g in gaps)
    transforms = defaultdict(lambda: [0., 0.])
    for p in probes:
        for name, (wall, cpu) in p['transforms'].items():
            transforms[name][0] += wall
            transforms[name][1] += cpu
    pids = {p['pid'] for p in probes}
    return dict(
        images_per_s=epoch['images_per_s'],
        images_per_s_per_worker=epoch['images_per_s'] / max(workers, 1),
        wall_ms=1e3 * mean('wall'), cpu_ms=1e3 * mean('cpu'), thread_cpu_ms=1e3 * mean('thread'),
        wall_per_cpu=mean('wall') / max(mean('thread'), 1e-9),
        minflt=mean('minflt'), majflt=mean('majflt'), nvcsw=mean('nvcsw'),
        nivcsw=mean('nivcsw'),
        gap_wall_ms=1e3 * sum(g[0] for g in gaps) / max(len(gaps), 1),
        gap_cpu_ms=1e3 * sum(g[1] for g in gaps) / max(len(gaps), 1),
        # share of the epoch each worker spent computing (1.0: never idle, never starved)
        worker_busy=busy_cpu / (epoch['seconds'] * max(len(pids), 1)),
        main_cpu_share=epoch['main_cpu_s'] / epoch['seconds'],
        transforms={k: dict(wall_ms=1e3 * v[0] / n, cpu_ms=1e3 * v[1] / n)
                    for k, v in transforms.items()},
        cache_mib=sorted({round(p['cache_bytes'] / 2**20, 1) for p in probes
                          if p.get('cache_bytes') is not None}))


def worker_settings(probes: Sequence[Dict[str, Any]]) -> Dict[int, Dict[str, Any]]:
    """The latest thread settings each worker (by pid) reported."""
    return {p['pid']: p['settings'] for p in probes if 'settings' in p}


def run_case(args, workers: str, work_dir: str) -> Dict[str, Any]:
    """Build the loader with ``workers`` workers, instrument its pipeline, run the epochs."""
    case = argparse.Namespace(**vars(args))
    case.workers = workers
    case.amp, case.channels_last, case.compile = None, False, False
    cfg = build_cfg(case, work_dir)
    loader = build_train_loader(cfg)
    dataset = _innermost(loader.dataset)
    dataset.pipeline = PipelineProbe(dataset.pipeline, dataset)
    load = MainLoad(args.main_load) if args.main_load else None
    epochs = []
    try:
        for epoch in range(args.epochs):
            epochs.append(_epoch(loader, epoch, load))
    finally:
        stop_workers(loader)
        if load is not None:
            load.stop()
    num_workers = cfg.train_dataloader.num_workers
    settings = worker_settings([p for e in epochs for p in e['probes']])
    for entry in epochs:
        entry['summary'] = summarise(entry, num_workers)
    later = epochs[1:] or epochs
    return dict(workers=num_workers, batch_size=cfg.train_dataloader.batch_size,
                pin_memory=cfg.train_dataloader.get('pin_memory', False),
                image_cache_mb=getattr(dataset, 'image_cache_mb', None),
                main_load_products=None if load is None else load.products,
                summary=summarise(dict(
                    seconds=sum(e['seconds'] for e in later),
                    images_per_s=sum(e['images'] for e in later) / sum(e['seconds'] for e in later),
                    main_cpu_s=sum(e['main_cpu_s'] for e in later),
                    probes=[p for e in later for p in e['probes']]), num_workers),
                worker_settings=settings,
                cgroup_throttled_s=None if any(e['cgroup_throttled_s'] is None for e in later)
                else sum(e['cgroup_throttled_s'] for e in later),
                epochs=[{k: v for k, v in e.items() if k != 'probes'} for e in epochs])


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    import turtle_plugin  # noqa: F401  (registers the modules)

    if args.taskset is not None:
        os.sched_setaffinity(0, args.taskset)  # inherited by the workers forked later
    started = utc_now()
    machine = machine_info(('numpy', 'opencv-python', 'torch', 'mmengine', 'mmpose', 'mmdet'))
    main_settings = thread_settings()
    settings = dict(vars(args), taskset=args.taskset)
    cases = []
    with tempfile.TemporaryDirectory() as work_dir:
        for workers in args.workers:
            cases.append(run_case(args, workers, work_dir))
            s = cases[-1]['summary']
            print(f"{cases[-1]['workers']} workers: {s['images_per_s']:.1f} img/s, wall/CPU "
                  f"{s['wall_per_cpu']:.2f}, CPU quota throttled "
                  f"{cases[-1]['cgroup_throttled_s']} s", flush=True)
            # after every case: a run stopped by a time limit keeps what it measured
            payload = result_payload('loader_diagnosis', started, machine, settings,
                                     main_process=main_settings, cases=cases)
            write_json(args.out, payload)
    rows, transform_rows = [], []
    for case in cases:
        s = case['summary']
        threads = sorted({len(w['threads']) for w in case['worker_settings'].values()})
        rows.append([case['workers'], s['images_per_s'], s['images_per_s_per_worker'],
                     s['wall_ms'], s['thread_cpu_ms'], s['wall_per_cpu'], s['minflt'],
                     s['nivcsw'], 100 * s['worker_busy'], 100 * s['main_cpu_share'],
                     '/'.join(map(str, threads))])
        for name, t in s['transforms'].items():
            transform_rows.append([case['workers'], name, t['wall_ms'], t['cpu_ms'],
                                   t['wall_ms'] / max(t['cpu_ms'], 1e-9)])
    where = f"taskset {args.taskset}" if args.taskset else 'all CPUs'
    print_table(SWEEP_HEADERS, rows, title=(
        f'{Path(args.config).name} on {args.data_root}, batch {cases[0]["batch_size"]}, '
        f'{where}, main load {args.main_load} threads; epochs after the first; per sample: '
        'pipeline in the worker (CPU = the worker thread\'s)'))
    print_table(TRANSFORM_HEADERS, transform_rows, title='per transform, per sample')
    example = next(iter(cases[-1]['worker_settings'].values()), None)
    if example is not None:
        print(f"\nworker threads ({cases[-1]['workers']} workers): {example['threads']}; torch "
              f"{example['torch_threads']}, cv2 {example['cv2_threads']}, OpenBLAS "
              f"{example['openblas_threads']}, affinity {example['affinity']}")
    print(f"main process: {main_settings['threads']}; torch {main_settings['torch_threads']}, "
          f"OpenBLAS {main_settings['openblas_threads']}")
    print(f"machine: {machine['usable_cpus']} usable CPUs on {machine['physical_cores']} cores, "
          f"cgroup CPU quota {machine['cgroup_cpu']['quota_cpus']} CPUs")
    last = cases[-1]['epochs'][-1]
    print(f"main thread CPU in the last epoch: {last['main_thread_cpu_s']}")
    print(f'\nwritten to {args.out}')
    return payload


if __name__ == '__main__':
    main()
