"""Small helpers shared by the benchmark scripts in ``bench/``.

Every benchmark records the machine it ran on, the exact command, the date and the figures of
the peer implementation measured in the same run (see ``BENCHMARKS.md``). These helpers collect
that context, time several implementations taking turns on the same work (so a noisy shared
machine slows every contender alike), print a plain-text table and write the JSON result file.
"""
import argparse
import ctypes
import datetime
import importlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

__all__ = [
    'REPO_ROOT', 'cpu_model', 'load_average', 'machine_info', 'command_line', 'git_revision',
    'start_revision', 'import_original', 'utc_now', 'steady_malloc', 'CLOCKS',
    'interleaved_timings', 'median', 'add_config_data_arguments',
    'format_table', 'print_table', 'write_json', 'result_payload', 'peer_info', 'cpu_topology',
    'thread_cpu_seconds', 'cgroup_cpu'
]

REPO_ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU model name from ``lscpu`` (or ``/proc/cpuinfo``, or ``platform``)."""
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                return line.split(':', 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def _package_version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_revision(repo: Path = REPO_ROOT) -> Optional[str]:
    """``HEAD`` of ``repo`` with ``+dirty`` when tracked files have changed, or None (also when
    ``repo`` is not itself the top of a git work tree, e.g. a copy inside another checkout)."""
    try:
        top = subprocess.run(['git', '-C', str(repo), 'rev-parse', '--show-toplevel'],
                             capture_output=True, text=True, check=True).stdout.strip()
        if Path(top).resolve() != Path(repo).resolve():
            return None
        rev = subprocess.run(['git', '-C', str(repo), 'rev-parse', '--short', 'HEAD'],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', '-C', str(repo), 'status', '--porcelain', '-uno'],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev + ('+dirty' if dirty else '')


def import_original(root: Path, *names: str, keep_on_path: bool = False) -> tuple:
    """Modules of the original YOLOv7 checked out at ``root`` (run beside ours, never vendored).

    Its modules import each other as top-level ``models.*`` / ``utils.*``, so ``root`` goes on
    ``sys.path`` for the import (and stays there with ``keep_on_path``, for code that imports
    lazily).

    Args:
        root (Path): the checkout.
        *names (str): module names, e.g. ``'models.yolo'``.
        keep_on_path (bool): leave ``root`` on ``sys.path`` afterwards.

    Returns:
        tuple: the modules, in the order of ``names``.
    """
    sys.path.insert(0, str(root))
    try:
        return tuple(importlib.import_module(name) for name in names)
    except ModuleNotFoundError as e:
        raise SystemExit(f'importing the original YOLOv7 from {root} failed: {e}. Its modules '
                         'import pandas, requests and seaborn (plots and downloads only): '
                         'install them outside this environment (pip install --target DIR, '
                         'then PYTHONPATH=DIR) or put stubs there; see BENCHMARKS.md') from e
    finally:
        if not keep_on_path:
            sys.path.remove(str(root))


def utc_now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def load_average() -> Optional[List[float]]:
    """The 1, 5 and 15 minute load averages (runnable processes; None where unknown). On a
    shared machine a load above the core count means the figures ran under contention."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def steady_malloc(mmap_threshold: int = 32 * 2**20, trim_threshold: int = 2**30) -> bool:
    """Make glibc serve large buffers from the heap and keep freed heap memory.

    By default glibc hands out buffers above a moving threshold as fresh ``mmap`` pages and
    returns heap memory to the system when enough is free, so whether a multi-megabyte image
    buffer costs a page fault per 4 KiB depends on what the process allocated before -- in a
    virtual machine that can add milliseconds per decoded frame and differ between two
    implementations timed in the same process. A long-running data-loader worker settles into
    reusing its heap; this puts the benchmark process in that state from the start, for every
    implementation alike.

    Args:
        mmap_threshold (int): allocations above this size use ``mmap`` (glibc caps it at 32 MiB).
        trim_threshold (int): free heap memory kept before returning it to the system.

    Returns:
        bool: whether both settings were applied (False off glibc).
    """
    try:
        libc = ctypes.CDLL('libc.so.6')
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, mmap_threshold)
                    and libc.mallopt(m_trim_threshold, trim_threshold))
    except (OSError, AttributeError):
        return False


def cpu_topology() -> Dict[str, Optional[int]]:
    """Physical cores and hardware threads behind the logical CPUs this process may use (from
    ``/sys``; None where unknown): 16 vCPUs on 8 cores with 2 hyper-threads each give far less
    than 16 cores' worth of data-loading workers."""
    try:
        usable = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return dict(physical_cores=None, threads_per_core=None)
    cores = set()
    for cpu in usable:
        topo = Path(f'/sys/devices/system/cpu/cpu{cpu}/topology')
        try:
            cores.add((topo.joinpath('physical_package_id').read_text().strip(),
                       topo.joinpath('core_id').read_text().strip()))
        except OSError:
            return dict(physical_cores=None, threads_per_core=None)
    return dict(physical_cores=len(cores), threads_per_core=round(len(usable) / len(cores)))


def _cgroup_dirs() -> List[Path]:
    """The cgroup folders that may hold this process's CPU limit, most specific first."""
    root, dirs = Path('/sys/fs/cgroup'), []
    try:
        for line in Path('/proc/self/cgroup').read_text().splitlines():
            _, controllers, path = line.split(':', 2)
            if controllers == '':  # cgroup v2
                dirs.append(root / path.lstrip('/'))
            elif 'cpu' in controllers.split(','):  # v1
                dirs += [root / 'cpu' / path.lstrip('/'), root / controllers / path.lstrip('/')]
    except (OSError, ValueError):
        pass
    return dirs + [root, root / 'cpu']


def cgroup_cpu(dirs: Optional[Sequence[Path]] = None) -> Dict[str, Optional[float]]:
    """The container's CPU quota and how long it was throttled (cgroup v2 ``cpu.max`` /
    ``cpu.stat``, or v1 ``cpu.cfs_quota_us`` / ``cpu.stat``): ``nproc`` counts the CPUs a
    process may run on, not a quota, so 16 visible CPUs can deliver only a few CPU-seconds per
    second. ``quota_cpus`` is None without a quota; values are None where nothing is readable.

    Args:
        dirs (Sequence[Path], optional): cgroup folders to read, first readable wins; default:
            this process's.
    """
    out: Dict[str, Optional[float]] = dict(quota_cpus=None, nr_throttled=None, throttled_s=None)
    for folder in _cgroup_dirs() if dirs is None else dirs:
        try:
            if (folder / 'cpu.max').is_file():
                quota, period = (folder / 'cpu.max').read_text().split()
                out['quota_cpus'] = None if quota == 'max' else int(quota) / int(period)
            elif (folder / 'cpu.cfs_quota_us').is_file():
                quota = int((folder / 'cpu.cfs_quota_us').read_text())
                period = int((folder / 'cpu.cfs_period_us').read_text())
                out['quota_cpus'] = None if quota < 0 else quota / period
            else:
                continue
            stat = dict(line.split() for line in (folder / 'cpu.stat').read_text().splitlines()
                        if len(line.split()) == 2)
        except (OSError, ValueError):
            continue
        out['nr_throttled'] = int(stat.get('nr_throttled', 0))
        out['throttled_s'] = (int(stat['throttled_usec']) / 1e6 if 'throttled_usec' in stat
                              else int(stat.get('throttled_time', 0)) / 1e9)  # v1: ns
        break
    return out


def thread_cpu_seconds() -> Dict[str, float]:
    """CPU seconds (user + system) of each thread of this process so far, keyed
    ``'comm [python thread name] tid'`` (the name only for Python threads): which threads of a
    process take its CPU time (pin-memory thread, OpenMP pool, ...)."""
    tick = os.sysconf('SC_CLK_TCK')
    py_names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for task in Path('/proc/self/task').iterdir():
        try:
            stat = task.joinpath('stat').read_text()
        except OSError:  # the thread ended meanwhile
            continue
        comm = stat[stat.index('(') + 1:stat.rindex(')')]
        fields = stat[stat.rindex(')') + 2:].split()
        name = py_names.get(int(task.name))
        key = f'{comm} [{name}] {task.name}' if name else f'{comm} {task.name}'
        out[key] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime, in ticks
    return out


_REVISION_AT_START: Dict[str, Optional[str]] = {}


def start_revision() -> Optional[str]:
    """:func:`git_revision` as it was at this function's first call in the process (benchmarks
    call :func:`machine_info` when they start): the code that ran, not the ``HEAD`` a
    checkout has moved on to by the time a run of an hour or more writes its results."""
    if 'turtle_plugin' not in _REVISION_AT_START:
        _REVISION_AT_START['turtle_plugin'] = git_revision()
    return _REVISION_AT_START['turtle_plugin']


def machine_info(packages: Sequence[str] = ('numpy', 'opencv-python', 'torch')) -> Dict[str, Any]:
    """What a benchmark figure depends on: CPU, cores usable by this process, versions; also
    takes the revision the run starts from (:func:`start_revision`).

    Args:
        packages (Sequence[str]): distribution names whose versions are recorded (missing ones
            are recorded as None).

    Returns:
        dict: ``cpu``, ``logical_cpus``, ``usable_cpus``, ``physical_cores`` and
        ``threads_per_core`` (of the usable CPUs), ``cgroup_cpu`` (quota, throttling),
        ``load_average`` (at the call), ``platform``, ``python`` and ``packages``.
    """
    start_revision()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return dict(
        cpu=cpu_model(),
        logical_cpus=os.cpu_count(),
        usable_cpus=usable,
        **cpu_topology(),
        cgroup_cpu=cgroup_cpu(),
        load_average=load_average(),
        platform=platform.platform(),
        python=platform.python_version(),
        packages={name: _package_version(name) for name in packages})


def add_config_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of the benches that run a config's training loader on a YOLO-layout image
    folder: ``config``, ``--data-root`` (default: Tiger-Pose beside the repository) and
    ``--train-images`` (labels in the sibling ``labels/``)."""
    parser.add_argument('config', help='training config, e.g. configs/tiger_kpt_tiny.py')
    parser.add_argument('--data-root', default=str(REPO_ROOT.parent / 'shared/data/tiger_pose'),
                        help='dataset root holding the image folder (default: Tiger-Pose)')
    parser.add_argument('--train-images', default='train/images',
                        help='image folder under --data-root (labels in the sibling labels/)')


def command_line() -> str:
    """The command that started this process, shell-quoted."""
    return ' '.join(shlex.quote(a) for a in [Path(sys.executable).name] + sys.argv)


CLOCKS = {'wall': time.perf_counter, 'cpu': time.process_time}


def interleaved_timings(cases: Dict[str, Callable[[int, Sequence[Any]], Any]],
                        items: Sequence[Any], repeats: int, chunk_size: int = 5,
                        clocks: Optional[Dict[str, Callable[[], float]]] = None
                        ) -> Dict[str, Dict[str, List[float]]]:
    """Seconds each case spends on ``items``, per repeat, the cases taking turns chunk by chunk.

    In every repeat the items are cut into chunks of ``chunk_size`` and each chunk is handed to
    every case in turn, so a burst of load from other processes on a shared machine hits all
    cases alike and per-repeat ratios stay meaningful even when absolute times drift. Each
    clock is read around every turn: wall time (``time.perf_counter``) includes waiting for a
    CPU on a busy machine, process CPU time (``time.process_time``) counts only the work of
    this process, the steadier measure of a single-threaded worker on a shared machine.

    Args:
        cases (dict[str, Callable[[int, Sequence], Any]]): name -> function of
            ``(repeat index, chunk of items)`` doing the work to time.
        items (Sequence): the work items (e.g. dataset indices), the same for every case.
        repeats (int): number of rounds over ``items``.
        chunk_size (int): items per turn.
        clocks (dict[str, Callable[[], float]], optional): name -> clock in seconds;
            default :data:`CLOCKS` (``wall`` and ``cpu``).

    Returns:
        dict[str, dict[str, list[float]]]: case -> clock -> the seconds of each repeat.
    """
    if chunk_size < 1:
        raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
    clocks = CLOCKS if clocks is None else clocks
    out = {name: {clock: [0.] * repeats for clock in clocks} for name in cases}
    for r in range(repeats):
        for start in range(0, len(items), chunk_size):
            chunk = items[start:start + chunk_size]
            for name, case in cases.items():
                begin = {clock: read() for clock, read in clocks.items()}
                case(r, chunk)
                for clock, read in clocks.items():
                    out[name][clock][r] += read() - begin[clock]
    return out


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    if not values:
        raise ValueError('median of an empty sequence')
    return statistics.median(values)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown-compatible pipe table; floats print with 3 significant digits or 1 decimal."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f'{value:.1f}' if abs(value) >= 100 else f'{value:.3g}'
        return '' if value is None else str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]
    lines = ['| ' + ' | '.join(h.ljust(w) for h, w in zip(headers, widths)) + ' |',
             '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
    lines += ['| ' + ' | '.join(c.ljust(w) for c, w in zip(r, widths)) + ' |' for r in text]
    return '\n'.join(lines)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = '') -> None:
    """Print :func:`format_table`, preceded by ``title`` when given."""
    if title:
        print(f'\n{title}')
    print(format_table(headers, rows), flush=True)


def write_json(path: str, payload: Dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON, creating parent folders; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + '\n')
    return out


def result_payload(benchmark: str, started: str, machine: Dict[str, Any], settings: Dict[str, Any],
                   **extra: Any) -> Dict[str, Any]:
    """The JSON every benchmark writes: what ran (``command``, ``settings``), where
    (``machine``, load at the end), when (``date`` = ``started``, ``finished``), at which
    revision (the one it started from), followed by the benchmark's own ``extra`` entries."""
    return dict(benchmark=benchmark, date=started, finished=utc_now(), command=command_line(),
                machine=machine, load_average_at_end=load_average(), settings=settings,
                turtle_plugin_revision=start_revision(), **extra)


def peer_info(root: Optional[Path], present: bool, **fields: Any) -> Dict[str, Any]:
    """``root``, git ``revision`` and ``fields`` of the peer checkout the run compared with;
    all None when it was absent (no comparison)."""
    if not present:
        return dict(root=None, revision=None, **{name: None for name in fields})
    return dict(root=str(root), revision=git_revision(root), **fields)
