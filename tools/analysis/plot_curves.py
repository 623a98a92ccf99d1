"""Plot loss / metric curves from MMEngine's JSON logs.

    python tools/analysis/plot_curves.py work_dirs/turtle_kpt/20261127_101010/vis_data/scalars.json \
        --keys loss loss_kpt coco/AP --out curves.png

Every line of ``scalars.json`` is one JSON dict logged at a ``step`` (an iteration for training
scalars, an epoch for validation metrics). Several log files (e.g. two runs) can be compared.
"""
import argparse
import json
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple


def load_scalars(path: str) -> Dict[str, List[Tuple[int, float]]]:
    """Read one ``scalars.json`` into ``{key: [(step, value), ...]}``.

    Raises:
        ValueError: naming the file and line of a line that is not a JSON object.
    """
    series = defaultdict(list)
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}:{lineno}: not a JSON line ({err.msg})') from None
            if not isinstance(record, dict) or 'step' not in record:
                raise ValueError(f'{path}:{lineno}: expected a JSON object with a "step" key')
            for key, value in record.items():
                if key != 'step' and isinstance(value, (int, float)):
                    series[key].append((int(record['step']), float(value)))
    return dict(series)


def plot_curves(log_files: Sequence[str], keys: Sequence[str], out_file: str,
                legend: Sequence[str] = ()) -> None:
    """Draw one subplot per key, one line per log file, and save the figure."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    all_series = [load_scalars(path) for path in log_files]
    names = list(legend) or [osp.basename(osp.dirname(osp.dirname(p))) or p for p in log_files]
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 3 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        found = False
        for series, name in zip(all_series, names):
            if key in series:
                steps, values = zip(*series[key])
                ax.plot(steps, values, label=name)
                found = True
        if not found:
            raise KeyError(f'no log has the key {key!r}; available: '
                           f'{sorted(set().union(*[s.keys() for s in all_series]))}')
        ax.set_title(key)
        ax.set_xlabel('step')
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_file)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description='Plot curves from MMEngine scalars.json logs')
    parser.add_argument('log_files', nargs='+', help='vis_data/scalars.json files')
    parser.add_argument('--keys', nargs='+', default=['loss'], help='scalars to plot')
    parser.add_argument('--legend', nargs='+', default=[], help='one name per log file')
    parser.add_argument('--out', default='curves.png', help='output image')
    args = parser.parse_args()
    plot_curves(args.log_files, args.keys, args.out, args.legend)
    print(f'saved {args.out}')


if __name__ == '__main__':
    main()
