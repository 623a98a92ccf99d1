"""The benchmark scripts run and record what BENCHMARKS.md relies on (figures are not checked:
speed claims live in BENCHMARKS.md, never in tests). They run as scripts, as users run them."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / 'data' / 'tiger_sample'


def _run(script, *args):
    # this checkout's turtle_plugin, not whichever one the interpreter has installed
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(REPO / 'bench' / script), *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_train_step_times_every_requested_case(tmp_path):
    out = tmp_path / 'train_step.json'
    stdout = _run('train_step.py', '--devices', 'cpu', '--archs', 'tiny', '--img-sizes', 64,
                  '--batches', 2, '--assigners', 'ota', 'v5', '--tasks', 'det', 'kpt',
                  '--impls', 'ours', '--no-clip', '--iters', 1, '--repeats', 2, '--warmup', 0,
                  '--precisions', 'fp32', 'bf16', '--out', out)
    assert 'skipping bf16 on CPU' in stdout  # MMEngine's AmpOptimWrapper needs an accelerator
    payload = json.loads(out.read_text())
    cases = {(r['impl'], r['task'], r['assigner']) for r in payload['results']}
    assert cases == {(impl, task, assigner) for impl in ('ours', 'ours_noclip')
                     for task in ('det', 'kpt') for assigner in ('ota', 'v5')}
    for result in payload['results']:
        assert 'error' not in result, result
        assert result['device'] == 'cpu' and result['batch'] == 2 and result['img_size'] == 64
        assert len(result['per_repeat_s_per_step']) == 2
        assert result['images_per_s'] == pytest.approx(2 / (result['ms_per_step'] / 1e3))
        assert result['ratio_vs_yolov7'] is None  # no original given: no comparison
    assert payload['original']['root'] is None
    assert payload['machine']['usable_cpus'] >= 1 and payload['command'].startswith('python')


def test_train_step_breakdown_times_every_stage(tmp_path):
    out = tmp_path / 'breakdown.json'
    stdout = _run('train_step.py', '--breakdown', 'host', '--devices', 'cpu', '--archs', 'tiny',
                  '--img-sizes', 64, '--batches', 2, '--tasks', 'kpt', 'det', '--assigners', 'v5',
                  '--iters', 2, '--warmup', 1, '--threads', 1, '--out', out)
    assert 'training step by stage' in stdout
    payload = json.loads(out.read_text())
    assert payload['benchmark'] == 'train_step_breakdown'
    assert {r['task'] for r in payload['results']} == {'kpt', 'det'}
    for result in payload['results']:
        stages = result['ms_median']
        assert list(stages) == ['data_preprocessor', 'backbone+neck', 'head convs',
                                'assignment', 'loss', 'parse_losses', 'backward',
                                'optimizer step', 'zero_grad', 'ema update', 'device wait']
        assert all(ms >= 0 for ms in stages.values())
        assert stages['backbone+neck'] > 0 and stages['backward'] > 0
        # the step itself syncs nowhere; the one read is MMEngine's stack_batch on a CPU table
        assert result['host_syncs'] == len(result['host_sync_sites'])


CHECK_BATCH = """
import train_step as t
d = t.make_batch(4, 96, 3, 5, seed=1)
b, k = d['boxes'], d['keypoints']
assert d['images'].shape == (4, 3, 96, 96) and b.shape == (4, 3, 4) and k.shape == (4, 3, 5, 2)
assert (b[..., :2] >= 0).all() and (b[..., 2:] <= 96 + 1e-4).all()
assert (b[..., 2:] - b[..., :2] >= 0.08 * 96 - 1e-4).all()
assert (k >= b[..., None, :2] - 1e-4).all() and (k <= b[..., None, 2:] + 1e-4).all()
e = t.make_batch(4, 96, 3, 5, seed=1)
assert all((d[n] == e[n]).all() for n in d)
print('ok')
"""


def test_train_step_batch_is_consistent():
    """Boxes inside the image and at least 8 % of it, keypoints inside their boxes, seeded."""
    proc = subprocess.run([sys.executable, '-c', CHECK_BATCH], cwd=REPO / 'bench',
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.strip().endswith('ok'), proc.stderr[-3000:]


@pytest.mark.slow
def test_end_to_end_reports_every_epoch(tmp_path):
    out = tmp_path / 'e2e.json'
    _run('end_to_end.py', 'configs/tiger_kpt_tiny.py', '--data-root', SAMPLE, '--epochs', 2,
         '--repeat', 2, '--workers', 0, '--device', 'cpu', '--out', out)
    payload = json.loads(out.read_text())
    assert payload['images'] == 2 * 16  # 16 bundled training frames, repeated twice
    assert [e['epoch'] for e in payload['epochs']] == [1, 2]
    for epoch in payload['epochs']:
        assert epoch['iters'] == 4  # 32 samples, batch 8
        assert epoch['images_per_s'] == pytest.approx(32 / epoch['seconds'])
        assert 0 <= epoch['data_wait_share'] <= 1
    assert payload['summary']['epoch_seconds'] == payload['epochs'][1]['seconds']
    assert payload['settings']['device'] == 'cpu' and payload['settings']['batch_size'] == 8
    # the model-only step: as many iterations as an epoch, cycling over 2 real batches of 8
    model_only, summary = payload['model_only'], payload['summary']
    assert (model_only['iters'], model_only['batches'], model_only['images']) == (4, 2, 32)
    assert model_only['images_per_s'] == pytest.approx(32 / model_only['seconds'])
    assert summary['model_only_images_per_s'] == model_only['images_per_s']
    assert summary['real_over_model_only'] == pytest.approx(
        summary['images_per_s'] / model_only['images_per_s'])
    assert payload['original'] == dict(root=None, revision=None)  # no --yolov7-root


@pytest.mark.slow
def test_end_to_end_model_only_iterations(tmp_path):
    out = tmp_path / 'e2e.json'
    stdout = _run('end_to_end.py', 'configs/tiger_kpt_tiny.py', '--data-root', SAMPLE,
                  '--epochs', 1, '--workers', 0, '--device', 'cpu', '--model-iters', 3,
                  '--model-batches', 1, '--out', out)
    payload = json.loads(out.read_text())
    model_only = payload['model_only']
    assert (model_only['iters'], model_only['batches'], model_only['images']) == (3, 1, 24)
    ratio = payload['summary']['real_over_model_only']
    assert ratio == pytest.approx(payload['epochs'][0]['images_per_s']
                                  / model_only['images_per_s'])
    assert '| model-only step ' in stdout and f'| real / model-only |         | {ratio:.3f}' \
        in stdout


@pytest.mark.slow
def test_end_to_end_loader_only(tmp_path):
    out = tmp_path / 'loader.json'
    stdout = _run('end_to_end.py', 'configs/tiger_kpt_tiny.py', '--data-root', SAMPLE,
                  '--epochs', 2, '--workers', 1, '--loader-only', '--out', out)
    assert 'loader only' in stdout
    payload = json.loads(out.read_text())
    assert payload['images'] == 16
    assert [e['iters'] for e in payload['epochs']] == [2, 2]
    assert all(e['data_wait_share'] is None for e in payload['epochs'])
    assert payload['summary']['data_wait_share'] is None
    assert payload['model_only'] is None and payload['summary']['real_over_model_only'] is None


ORIGINAL_EPOCHS = """
import json, os, sys
from pathlib import Path
import end_to_end as e2e
import yolov7_pose_peer as p
weights = Path(sys.argv[1]) / 'weights'
weights.mkdir()
# the copies of epochs 1-4 and 6 (5 missing: the list ends at 4); last.pt is not an epoch
t0 = 1.7e9
for epoch, t in ((1, 0.), (2, 10.), (3, 22.), (4, 30.), (6, 50.)):
    (weights / f'epoch_{epoch}.pt').write_bytes(b'')
    os.utime(weights / f'epoch_{epoch}.pt', (t0 + t, t0 + t))
(weights / 'last.pt').write_bytes(b'')
out = {}
out['epochs'] = p.epoch_wall_times(weights, 100, 8)  # 13 batches an epoch
out['summary'] = e2e.summarise_original(out['epochs'])
out['all_plotted'] = e2e.summarise_original(p.epoch_wall_times(weights, 16, 8))
args = e2e.parse_args(['configs/tiger_kpt_tiny.py', '--data-root', sys.argv[2], '--epochs', '3',
                       '--repeat', '2', '--batch', '4', '--workers', '1',
                       '--yolov7-root', '/y7', '--yolov7-tiny-cfg', '/tiny.yaml'])
cfg = e2e.build_cfg(args, sys.argv[1])
command = e2e.original_command(args, cfg, Path(sys.argv[1]) / 'y7', cuda=False)
out['script'] = command[1]
out['peer'] = vars(p.parse_args(command[2:]))
print(json.dumps(out))
"""


def test_end_to_end_original_epoch_times(tmp_path):
    """The original's epoch times are the gaps between its epoch_N.pt copies (hand-made here
    with set modification times); epochs holding any of the 33 batches its train.py draws are
    warm-up; the command gives it our run's data, epochs, batch, size, workers and device."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / 'bench')]))
    proc = subprocess.run([sys.executable, '-c', ORIGINAL_EPOCHS, str(tmp_path), str(SAMPLE)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # batches 0-32 are drawn: 13-25 in epoch 2, 26-32 in epoch 3, none from epoch 4 (39-51)
    assert out['epochs'] == [
        dict(epoch=2, seconds=10., images=100, images_per_s=10., plotted_batches=13),
        dict(epoch=3, seconds=12., images=100, images_per_s=100 / 12, plotted_batches=7),
        dict(epoch=4, seconds=8., images=100, images_per_s=12.5, plotted_batches=0)]
    assert out['summary'] == dict(epoch_seconds=8., images_per_s=12.5, epochs_used=[4],
                                  includes_plotting=False)
    # 2 batches an epoch: every epoch up to 17 draws, so all are used, flagged
    assert out['all_plotted'] == dict(epoch_seconds=10., images_per_s=1.6,
                                      epochs_used=[2, 3, 4], includes_plotting=True)
    peer = out['peer']
    assert out['script'] == str(REPO / 'bench' / 'yolov7_pose_peer.py')
    assert (peer['stage'], peer['skip_test'], peer['val_interval']) == ('train', True, 1)
    assert (peer['epochs'], peer['batch'], peer['img_size'], peer['workers'], peer['repeat'],
            peer['device']) == (3, 4, 256, 1, 2, 'cpu')
    assert peer['data_root'] == str(SAMPLE) and peer['train_images'] == 'train/images'
    assert peer['val_images'] == 'train/images'  # built, never run (--skip-test)
    assert peer['metainfo'] == str(REPO / 'configs/_base_/datasets/tiger.py')
    assert (peer['yolov7_root'], peer['model_cfg']) == ('/y7', '/tiny.yaml')


CHECK_CGROUP = """
import sys
from pathlib import Path
from _common import cgroup_cpu
v2, v1, empty = (Path(sys.argv[1]) / name for name in ('v2', 'v1', 'empty'))
for folder in (v2, v1, empty):
    folder.mkdir()
(v2 / 'cpu.max').write_text('200000 100000\\n')  # 2 CPUs' worth per period
(v2 / 'cpu.stat').write_text('usage_usec 9\\nnr_throttled 3\\nthrottled_usec 1500000\\n')
(v1 / 'cpu.cfs_quota_us').write_text('-1\\n')
(v1 / 'cpu.cfs_period_us').write_text('100000\\n')
(v1 / 'cpu.stat').write_text('nr_periods 5\\nnr_throttled 0\\nthrottled_time 250000000\\n')
assert cgroup_cpu([empty, v2]) == dict(quota_cpus=2.0, nr_throttled=3, throttled_s=1.5)
assert cgroup_cpu([v1]) == dict(quota_cpus=None, nr_throttled=0, throttled_s=0.25)
assert cgroup_cpu([empty]) == dict(quota_cpus=None, nr_throttled=None, throttled_s=None)
print('ok')
"""


def test_cgroup_cpu_reads_quota_and_throttling(tmp_path):
    """A container's CPU quota (which nproc does not show) from cgroup v2 and v1 files."""
    proc = subprocess.run([sys.executable, '-c', CHECK_CGROUP, str(tmp_path)],
                          cwd=REPO / 'bench', capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().endswith('ok'), proc.stderr[-3000:]


def test_loader_diagnosis_reports_from_inside_the_loading_process(tmp_path):
    """Without workers the pipeline runs in the main process: every sample is measured, each
    transform (and the mosaic's own image loads) timed, the process's threads listed."""
    out = tmp_path / 'diag.json'
    stdout = _run('loader_diagnosis.py', 'configs/tiger_kpt_tiny.py', '--data-root', SAMPLE,
                  '--workers', 0, '--epochs', 1, '--out', out)
    assert 'per transform, per sample' in stdout
    payload = json.loads(out.read_text())
    (case, ) = payload['cases']
    assert case['workers'] == 0 and case['epochs'][0]['images'] == 16
    summary = case['summary']
    assert {'KptLoadImage', 'KptMosaic', 'KptMosaic>KptLoadImage', 'PackPoseInputs'} <= set(
        summary['transforms'])
    assert summary['wall_ms'] > 0 and summary['thread_cpu_ms'] > 0
    assert summary['wall_per_cpu'] == pytest.approx(summary['wall_ms'] / summary['thread_cpu_ms'])
    (settings, ) = case['worker_settings'].values()
    assert settings['torch_threads'] >= 1 and 'python [MainThread]' in settings['threads']
    assert payload['machine']['physical_cores'] >= 1


@pytest.mark.slow
def test_loader_diagnosis_sweeps_pinned_workers_under_main_load(tmp_path):
    """Two workers pinned to CPU 0 beside a busy main process: each worker reports its
    single-threaded settings and affinity, both epochs their images, the load ran."""
    out = tmp_path / 'diag.json'
    _run('loader_diagnosis.py', 'configs/tiger_kpt_tiny.py', '--data-root', SAMPLE,
         '--workers', 1, 2, '--epochs', 2, '--taskset', '0', '--main-load', 1, '--out', out)
    payload = json.loads(out.read_text())
    assert [c['workers'] for c in payload['cases']] == [1, 2]
    assert payload['settings']['taskset'] == [0]
    for case in payload['cases']:
        assert [e['images'] for e in case['epochs']] == [16, 16]
        assert case['main_load_products'] > 0
        assert len(case['worker_settings']) == case['workers']  # one report per worker
        for worker in case['worker_settings'].values():
            assert worker['affinity'] == [0] and worker['torch_threads'] == 1
            assert worker['threads'][0] == 'pt_data_worker [MainThread]'
        assert case['summary']['images_per_s_per_worker'] == pytest.approx(
            case['summary']['images_per_s'] / case['workers'])


GPU_SESSION = REPO / 'bench' / 'gpu_session.sh'
PARSE_ALL = """
import importlib, json, sys
for argv in json.loads(sys.argv[1]):
    importlib.import_module(argv[0][len('bench/'):-len('.py')]).parse_args(argv[1:])
print('ok')
"""


def test_gpu_session_script_is_bash_and_installs_the_wheels_first():
    subprocess.run(['bash', '-n', str(GPU_SESSION)], check=True)
    first = GPU_SESSION.read_text().splitlines()[0]
    # gpu-wheels/README.md's line, reading the wheels carried in .gpuwheels/
    assert first == ('python3 -m pip install -q --no-index --no-deps --no-compile '
                     '--target /tmp/site .gpuwheels/*.whl')


def _gpu_session_commands(tmp_path, script=GPU_SESSION, archive='gpu_session.tgz',
                          **env_extra) -> tuple:
    """Run the script with ``python3`` replaced by a stub that records its arguments (and
    exits with ``$FAIL_ACCURACY`` for a training ``bench/accuracy.py`` call, 0 otherwise);
    returns every call's argv and the summary log."""
    calls, bin_dir, out = tmp_path / 'calls', tmp_path / 'bin', tmp_path / 'out'
    for folder in (calls, bin_dir, out):
        folder.mkdir()
    stub = bin_dir / 'python3'
    stub.write_text('#!/bin/bash\nn=$(ls "$CALLS" | wc -l)\n'
                    'printf "%s\\0" "$@" > "$CALLS/$(printf %03d "$n")"\n'
                    'if [ "$1" = bench/accuracy.py ] && [[ " $* " != *" --summarise-only "* ]]; '
                    'then exit "${FAIL_ACCURACY:-0}"; fi\n')
    stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHON', 'ARCH', 'EPOCHS', 'SEEDS', 'JOBS', 'LIMIT_MIN')
           and not k.startswith('YOLOV7_')}
    env.update(PATH=f'{bin_dir}:{env["PATH"]}', CALLS=str(calls), OUT=str(out),
               RES=str(tmp_path / 'res'), **env_extra)
    proc = subprocess.run(['bash', str(script), str(SAMPLE)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / archive).is_file()
    argvs = [[a.decode() for a in f.read_bytes().split(b'\0')[:-1]]
             for f in sorted(calls.iterdir())]
    return argvs, (out / 'summary.log').read_text()


def test_gpu_session_bench_commands_parse(tmp_path):
    """The script runs through with ``python3`` replaced by a stub that records its arguments;
    every bench command it would run then parses them as the bench does."""
    argvs, summary = _gpu_session_commands(tmp_path)
    assert argvs[0][:3] == ['-m', 'pip', 'install']
    benches = [argv for argv in argvs if argv[0].startswith('bench/')]
    assert [argv[0] for argv in benches] == ['bench/loader_diagnosis.py'] + [
        'bench/end_to_end.py'] * 3 + ['bench/loader_diagnosis.py'] * 2
    assert all(argv[argv.index('--data-root') + 1] == str(SAMPLE) for argv in benches)
    check = subprocess.run([sys.executable, '-c', PARSE_ALL, json.dumps(benches)],
                           cwd=REPO / 'bench', env=dict(os.environ, PYTHONPATH=str(REPO)),
                           capture_output=True, text=True, timeout=120)
    assert check.stdout.strip() == 'ok', check.stderr[-3000:]
    assert summary.count('rc=') == len(benches)
    assert not any('--yolov7-root' in argv for argv in benches)  # only when asked for


def test_gpu_session_times_the_original_when_given(tmp_path):
    """With YOLOV7_ROOT and YOLOV7_TINY_CFG the automatic-settings end-to-end step also trains
    the original, with 150 s more."""
    (tmp_path / 'deps').mkdir()
    argvs, summary = _gpu_session_commands(
        tmp_path, YOLOV7_ROOT='.gpuyolov7/pose', YOLOV7_TINY_CFG='.gpuyolov7/tiny.yaml',
        YOLOV7_PYTHONPATH=str(tmp_path / 'deps'))
    with_original = [argv for argv in argvs if '--yolov7-root' in argv]
    assert len(with_original) == 1 and with_original[0][0] == 'bench/end_to_end.py'
    argv = with_original[0]
    assert argv[argv.index('--yolov7-root') + 1] == '.gpuyolov7/pose'
    assert argv[argv.index('--yolov7-tiny-cfg') + 1] == '.gpuyolov7/tiny.yaml'
    assert argv[argv.index('--out') + 1].endswith('e2e_auto.json')
    assert 'limit 260s' in summary.split('=== e2e_auto')[1].splitlines()[0]
    check = subprocess.run([sys.executable, '-c', PARSE_ALL, json.dumps([argv])],
                           cwd=REPO / 'bench', env=dict(os.environ, PYTHONPATH=str(REPO)),
                           capture_output=True, text=True, timeout=120)
    assert check.stdout.strip() == 'ok', check.stderr[-3000:]


GPU_ACCURACY = REPO / 'bench' / 'gpu_accuracy.sh'


def test_gpu_accuracy_script_is_bash_and_installs_the_wheels_first():
    subprocess.run(['bash', '-n', str(GPU_ACCURACY)], check=True)
    assert GPU_ACCURACY.read_text().splitlines()[0] == (
        'python3 -m pip install -q --no-index --no-deps --no-compile '
        '--target /tmp/site .gpuwheels/*.whl')


def _accuracy_call(argvs) -> list:
    calls = [argv for argv in argvs if argv[0] == 'bench/accuracy.py']
    check = subprocess.run([sys.executable, '-c', PARSE_ALL, json.dumps(calls)],
                           cwd=REPO / 'bench', env=dict(os.environ, PYTHONPATH=str(REPO)),
                           capture_output=True, text=True, timeout=120)
    assert check.stdout.strip() == 'ok', check.stderr[-3000:]
    return calls


def _flag(argv, name, count=1):
    i = argv.index(name)
    return argv[i + 1] if count == 1 else argv[i + 1:i + 1 + count]


def test_gpu_accuracy_runs_the_l_comparison_within_the_device_call(tmp_path):
    """Defaults: the l models, 300 epochs, validation every 30, seeds 0 and 1 of ours and
    YOLOX-Pose trained at once, the bench's --time-limit at 7 min; the original only when its
    checkout and model yaml are given."""
    argvs, summary = _gpu_session_commands(tmp_path, script=GPU_ACCURACY,
                                           archive='gpu_accuracy.tgz')
    assert argvs[0][:3] == ['-m', 'pip', 'install']
    bench, = _accuracy_call(argvs)
    assert _flag(bench, '--arch') == 'l' and _flag(bench, '--epochs') == '300'
    assert _flag(bench, '--val-interval') == '30' and _flag(bench, '--time-limit') == '7'
    assert _flag(bench, '--seeds', 2) == ['0', '1']
    assert _flag(bench, '--models', 2) == ['ours', 'yoloxpose'] and '--yolov7-root' not in bench
    assert _flag(bench, '--jobs') == '4' and _flag(bench, '--data-root') == str(SAMPLE)
    assert _flag(bench, '--metainfo') == f'{SAMPLE}/metainfo.py'
    assert 'training limit 7 min' in summary and 'done rc=0' in summary
    assert not any('--summarise-only' in argv for argv in argvs)


def test_gpu_accuracy_with_the_original_one_seed_and_a_cut_bench(tmp_path):
    """With YOLOV7_ROOT / YOLOV7_CFG the original trains beside them; SEEDS=0 runs the three
    at once; a bench cut short is followed by --summarise-only over what the runs evaluated."""
    argvs, summary = _gpu_session_commands(
        tmp_path, script=GPU_ACCURACY, archive='gpu_accuracy.tgz', SEEDS='0', ARCH='tiny',
        EPOCHS='5', YOLOV7_ROOT='.gpuyolov7/pose', YOLOV7_CFG='.gpuyolov7/yolov7-tiny.yaml',
        FAIL_ACCURACY='124')
    bench, again = _accuracy_call(argvs)
    assert _flag(bench, '--models', 3) == ['ours', 'yoloxpose', 'yolov7pose']
    assert _flag(bench, '--yolov7-root') == '.gpuyolov7/pose'
    assert _flag(bench, '--yolov7-cfg') == '.gpuyolov7/yolov7-tiny.yaml'
    assert _flag(bench, '--arch') == 'tiny' and _flag(bench, '--val-interval') == '1'
    assert _flag(bench, '--seeds') == '0' and _flag(bench, '--jobs') == '3'
    assert again == bench + ['--summarise-only']
    assert 'accuracy rc=124: summarising' in summary


def test_trackers_scores_each_candidate_or_says_why_not(tmp_path):
    """bench/trackers.py scores what is installed (MMDetection's ByteTracker always is) and
    records a candidate it cannot import instead of failing."""
    out = tmp_path / 'trackers.json'
    proc = subprocess.run(
        [sys.executable, str(REPO / 'bench' / 'trackers.py'), '--scenes', 'crossing', '--seeds',
         '1', '--trackers', 'turtle_plugin_tracker', 'mmdet_bytetrack', 'boxmot_ocsort',
         '--out', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO)))  # this checkout's turtle_plugin
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads(out.read_text())
    scored = {r['tracker']: r for r in payload['results']}
    assert set(scored) | set(payload['skipped']) == {'turtle_plugin_tracker', 'mmdet_bytetrack',
                                                     'boxmot_ocsort'}
    # the crossing scene of tests/test_apis/test_tracking.py's tracker: no identity switch
    assert scored['turtle_plugin_tracker']['num_switches'] == 0
    assert 0.9 < scored['turtle_plugin_tracker']['idf1'] <= 1.0
    assert scored['mmdet_bytetrack']['ms_per_frame'] > 0


ACCURACY_CONFIGS = """
import argparse, json
import accuracy as a
args = a.parse_args(['--data-root', {sample!r}, '--data-yaml', 'tiger.yaml', '--epochs', '30',
                     '--batch', '4', '--val-interval', '5', '--workers', '0'])
gt = 'gt.json'
ours = a.ours_config('ours', args, 3, gt)
p5 = a.ours_config('ours+p5', args, 3, gt)
orig = a.ours_config('ours+p5+v5+pose_aug+area_eval', args, 3, gt)
peer = a.yoloxpose_config('yoloxpose', args, 3, gt)
peer_lr = a.yoloxpose_config('yoloxpose+auto_lr', args, 3, gt)
study = a.ours_config('ours+dw_kpt+sigma_1k+close10', args, 3, gt)
meta = a.ours_config('ours+sigma_meta', args, 3, gt)
assign = a.ours_config('ours+ota_oks+cells5', args, 3, gt)
centre = a.ours_config('ours+kpt_centre', args, 3, gt)
c75 = a.ours_config('ours+close75', args, 3, gt)
c100 = a.ours_config('ours+close100', args, 3, gt)
lr2 = a.ours_config('ours+lr2x', args, 3, gt)
wu = a.ours_config('ours+warmup1k', args, 3, gt)
def recipe(cfg):
    pipe = cfg.train_dataloader.dataset.pipeline
    return dict(assigner=cfg.model.head.assigner['type'], aux=cfg.model.head.get('loss_kpt_aux'),
                prior=cfg.model.head.head_module.kpt_prior,
                types=[s['type'] for s in pipe],
                affine=[(s['translate'], s['scale']) for s in a._walk(pipe)
                        if s['type'] == 'KptRandomAffine'],
                shrink=cfg.val_dataloader.dataset.pipeline[1].get('shrink_interpolation'))
out = dict(ours=recipe(ours), p5=recipe(p5), orig=recipe(orig), centre=recipe(centre))
out['budget'] = [(c.train_cfg.max_epochs, c.train_cfg.val_interval, c.train_dataloader.batch_size,
                  c.randomness.seed, c.val_evaluator.ann_file, c.val_evaluator.type)
                 for c in (ours, p5, peer)]
out['close'] = [(c.default_hooks.close_mosaic.num_last_epochs,
                 c.default_hooks.close_mosaic.last_ratio) for c in (ours, study, p5, c75, c100)]
def same_but(cfg, *path):
    # cfg equals ours but for the last key of path: at each level every other key is equal
    mine, theirs = cfg.to_dict(), ours.to_dict()
    for key in path:
        if dict(mine, **{{key: None}}) != dict(theirs, **{{key: None}}):
            return False
        mine, theirs = mine[key], theirs[key]
    return True
out['close_same'] = [same_but(c, 'default_hooks', 'close_mosaic') for c in (c75, c100)]
out['lr'] = dict(lr=[c.optim_wrapper.optimizer.lr for c in (ours, lr2)],
                 same=same_but(lr2, 'optim_wrapper', 'optimizer', 'lr'))
out['warmup'] = dict(
    min_iters=[c.default_hooks.param_scheduler.min_warmup_iters for c in (ours, wu)],
    same=same_but(wu, 'default_hooks', 'param_scheduler', 'min_warmup_iters'))
out['study'] = dict(kpt_head=[c.model.head.head_module.kpt_head for c in (ours, study)],
                    sigmas=[c.model.head.kpt_sigmas for c in (ours, study, meta, p5)],
                    same=recipe(study) == recipe(ours),
                    warmup=[c.default_hooks.kpt_sigma_warmup.warmup_ratio
                            for c in (ours, study, meta, p5)],
                    assigner=assign.model.head.assigner,
                    same_but_assigner=(dict(recipe(assign), assigner='YOLOv5Assigner')
                                       == recipe(ours)))
out['peer'] = dict(
    k=peer.model.head.num_keypoints, init='init_cfg' in peer.model.backbone,
    sizes=peer.model.data_preprocessor.batch_augments[0].random_size_range,
    codec=peer.train_dataloader.dataset.pipeline[-2].encoder.input_size,
    sched=[(s.type, s.begin, s.end) for s in peer.param_scheduler],
    switch=[h.num_last_epochs for h in peer.custom_hooks if h.type == 'YOLOXPoseModeSwitchHook'],
    dataset=peer.train_dataloader.dataset.type, oks=peer.model.head.assigner.oks_calculator)
# the same NaN stop for ours (its runtime config) and YOLOX-Pose (added by the bench)
out['nan_stop'] = [c.default_hooks.divergence_check for c in (ours, peer)]
out['peer_lr'] = dict(scale=[c.auto_scale_lr for c in (peer, peer_lr)],
                      same=dict(peer_lr.to_dict(), auto_scale_lr=None)
                      == dict(peer.to_dict(), auto_scale_lr=None))
print(json.dumps(out, default=list))
"""


def test_accuracy_bench_configs_share_data_budget_and_evaluator():
    """Every model of bench/accuracy.py trains on the same data for the same epochs, batch and
    seed and is scored by the same evaluator on the same ground truth; the variants change
    exactly the recipe pieces they name; the peer keeps its recipe with milestones scaled."""
    proc = subprocess.run([sys.executable, '-c', ACCURACY_CONFIGS.format(sample=str(SAMPLE))],
                          cwd=REPO / 'bench', capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['ours'] == dict(
        assigner='YOLOv5Assigner', aux=dict(type='KptScaledL1Loss', loss_weight=0.1),
        prior='zero',
        types=['KptLoadImage', 'KptMosaic', 'KptRandomAffine', 'KptHSVRandomAug',
               'KptRandomFlip', 'KptFilterAnnotations', 'GenerateTarget', 'PackPoseInputs'],
        affine=[[0.1, 0.5]], shrink='area')
    assert out['p5']['assigner'] == 'YOLOv7OTAAssigner' and out['p5']['aux'] is None
    assert out['p5']['prior'] == 'zero'
    assert out['p5']['types'][1:4] == ['RandomChoice', 'KptRandomAffine', 'KptMixUp']
    assert out['p5']['shrink'] == 'linear' and [0.2, 0.9] in out['p5']['affine']
    # the original pose branch's recipe: p5's losses and keypoint init, YOLOv5 assignment,
    # hyp.pose augmentation
    assert out['orig'] == dict(out['ours'], aux=None)
    # kpt_centre: every keypoint starting at its cell's centre, nothing else changed
    assert out['centre'] == dict(out['ours'], prior='centre')
    assert {tuple(b) for b in out['budget']} == {(30, 5, 4, 3, 'gt.json', 'KptBoxCocoMetric')}
    # the keypoint configs close the mosaic for the last half of any schedule, close10 (the
    # default before) and the p5 rows for the last tenth, close75 / close100 the last three
    # quarters / every epoch, changing nothing else; the hook reads the bench's epochs
    assert out['close'] == [[None, 0.5], [None, 0.1], [None, 0.1], [None, 0.75], [None, 1.0]]
    assert out['close_same'] == [True, True]
    # lr2x: the SGD learning rate doubled, nothing else
    assert out['lr'] == dict(lr=[0.01, 0.02], same=True)
    # warmup1k: YOLOv7's minimum of 1000 warm-up iterations (turtle_kpt_p5.py's), nothing else
    assert out['warmup'] == dict(min_iters=[0, 1000], same=True)
    # the study's variants: YOLO-Pose's depthwise keypoint branch; the OKS loss's sigmas --
    # the default warms them up from 1/K to the metainfo's over half the epochs, sigma_1k keeps
    # 1/K, sigma_meta (and the seed recipe) the metainfo's; OTA with YOLOX-Pose's OKS terms
    # over 5 candidate cells; nothing else changes
    tiger_meta = dict(from_file=str(REPO / 'configs/_base_/datasets/tiger.py'))
    assert out['study'] == dict(
        kpt_head=['conv', 'dw'], same=True,
        sigmas=[tiger_meta, 'uniform', tiger_meta, tiger_meta], warmup=[0.5, 0, 0, 0],
        assigner=dict(type='YOLOv7OTAAssigner', oks_weight=3.0, dynamic_k_indicator='oks',
                      neighbour_offset=1.0), same_but_assigner=True)
    assert out['peer'] == dict(
        k=12, init=False, sizes=[192, 384], codec=[256, 256],  # (320, 640) x 256/416
        sched=[['QuadraticWarmupLR', 0, 1], ['CosineAnnealingLR', 1, 28],
               ['ConstantLR', 28, 30]],
        switch=[2], dataset='YOLOKptDataset',
        oks=dict(type='PoseOKS', metainfo=str(REPO / 'configs/_base_/datasets/tiger.py')))
    assert out['nan_stop'] == [dict(type='DivergenceCheckHook')] * 2
    # yoloxpose+auto_lr: the shipped run with MMPose's --auto-scale-lr switch on, nothing else
    assert out['peer_lr'] == dict(scale=[dict(base_batch_size=256),
                                         dict(base_batch_size=256, enable=True)], same=True)


ACCURACY_ARCH = """
import json
import accuracy as a
from mmengine.config import Config
out = {{}}
for arch in sorted(a.ARCHS):
    args = a.parse_args(['--arch', arch, '--data-root', {sample!r}, '--data-yaml', 'tiger.yaml',
                         '--epochs', '30', '--batch', '4', '--workers', '0'])
    ours, peer = a.ours_config('ours', args, 3, 'gt.json'), a.yoloxpose_config('yoloxpose', args, 3,
                                                                              'gt.json')
    default = Config.fromfile(str(a.REPO_ROOT / a.ARCHS[arch]['ours']))
    out[arch] = dict(
        ours=[ours.model.backbone.arch, ours.model.head.head_module.in_channels,
              default.model.head.head_module.in_channels],
        head_channels=a.ARCHS[arch]['head_channels'],
        peer=[peer.model.backbone.widen_factor, peer.model.backbone.deepen_factor,
              peer.model.head.num_keypoints,
              peer.model.data_preprocessor.batch_augments[0].random_size_range,
              sorted({{tuple(s.get('img_scale') or s.get('input_size'))
                      for s in a._walk(peer.train_dataloader.dataset.pipeline)
                      + a._walk(peer.val_dataloader.dataset.pipeline)
                      if s.get('img_scale') or s.get('input_size')}}),
              peer.train_dataloader.dataset.pipeline[-2].encoder.input_size],
        budget=[(c.train_cfg.max_epochs, c.train_dataloader.batch_size, c.randomness.seed,
                 c.val_evaluator.ann_file) for c in (ours, peer)])
print(json.dumps(out, default=list))
"""


def test_accuracy_bench_arch_sizes_every_model_alike():
    """``--arch l`` compares YOLOv7-l (``configs/turtle_kpt.py``) with YOLOX-Pose-l (MMPose's
    640-pixel config, its multi-scale range (480, 800) scaled by 256/640 to (192, 320)) on the
    same budget; the channels the original's model yaml must feed its head are ours' at each
    size."""
    proc = subprocess.run([sys.executable, '-c', ACCURACY_ARCH.format(sample=str(SAMPLE))],
                          cwd=REPO / 'bench', capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['tiny']['ours'] == ['tiny', [128, 256, 512], [128, 256, 512]]
    assert out['l']['ours'] == ['l', [256, 512, 1024], [256, 512, 1024]]
    for arch in ('tiny', 'l'):
        assert out[arch]['head_channels'] == out[arch]['ours'][1]
        assert {tuple(b) for b in out[arch]['budget']} == {(30, 4, 3, 'gt.json')}
    assert out['tiny']['peer'] == [0.375, 0.33, 12, [192, 384], [[256, 256]], [256, 256]]
    assert out['l']['peer'] == [1, 1, 12, [192, 320], [[256, 256]], [256, 256]]


PEER_LR = """
import json, sys
import accuracy as a
import turtle_plugin  # the config's custom_imports, which Config.fromfile would import
from mmengine.runner import Runner
args = a.parse_args(['--data-root', {sample!r}, '--data-yaml', 'tiger.yaml', '--batch', '4',
                     '--workers', '0'])
lrs = []
for spec in ('yoloxpose', 'yoloxpose+auto_lr'):
    cfg = a.yoloxpose_config(spec, args, 0, 'gt.json')
    cfg.work_dir = sys.argv[1] + '/' + spec
    runner = Runner.from_cfg(cfg)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.scale_lr(runner.optim_wrapper, runner.auto_scale_lr)  # as Runner.train() does
    lrs.append(sorted({{g['lr'] for g in runner.optim_wrapper.optimizer.param_groups}}))
print(json.dumps(lrs))
"""


def test_accuracy_bench_peer_auto_lr_scales_the_shipped_lr_to_the_batch(tmp_path):
    """``yoloxpose+auto_lr`` trains with MMPose's AdamW lr 0.004 (for 256 images a step)
    scaled by MMEngine's Runner to the bench's batch: 0.004 * 4 / 256 at batch 4."""
    proc = subprocess.run(
        [sys.executable, '-c', PEER_LR.format(sample=str(SAMPLE)), str(tmp_path)],
        cwd=REPO / 'bench', capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    shipped, scaled = json.loads(proc.stdout.strip().splitlines()[-1])
    assert shipped == [0.004]
    assert scaled == [pytest.approx(0.004 * 4 / 256)]


@pytest.mark.slow
def test_accuracy_bench_trains_scores_and_plots(tmp_path):
    """Two epochs of ours and of YOLOX-Pose-tiny on the bundled sample: both scored per epoch by
    the same evaluator, summarised, plotted; --summarise-only re-reads the same runs."""
    args = ['--data-root', SAMPLE, '--data-yaml', 'tiger.yaml', '--epochs', 2,
            '--val-interval', 1, '--seeds', 0, '--models', 'ours', 'yoloxpose',
            '--workers', 0, '--out-dir', tmp_path]
    stdout = _run('accuracy.py', *args)
    assert '| ours ' in stdout and '| yoloxpose ' in stdout
    payload = json.loads((tmp_path / 'accuracy.json').read_text())
    assert not payload['failed']
    assert [(r['model'], [p['epoch'] for p in r['curve']]) for r in payload['runs']] == [
        ('ours', [1, 2]), ('yoloxpose', [1, 2])]
    gt = json.loads((tmp_path / 'val_ground_truth.json').read_text())
    assert len(gt['images']) == 8  # the 8 bundled val frames, one ground truth for both
    for row in payload['summary']:
        assert row['epochs'] == 2 and row['seeds'] == [0]
        assert 0 <= row['AP']['mean'] <= 1 and row['minutes']['mean'] > 0
    assert (tmp_path / 'oks_ap_per_epoch.png').stat().st_size > 1000
    again = _run('accuracy.py', *args, '--summarise-only')
    assert json.loads((tmp_path / 'accuracy.json').read_text())['summary'][0]['AP'] == \
        payload['summary'][0]['AP']
    assert '| ours ' in again


@pytest.mark.slow
def test_accuracy_bench_trains_and_scores_the_l_models(tmp_path):
    """One epoch of YOLOv7-l and YOLOX-Pose-l (``--arch l``) on the bundled sample, both
    scored by the one evaluator: the sizes of a comparison that only a GPU can run long."""
    stdout = _run('accuracy.py', '--arch', 'l', '--data-root', SAMPLE, '--data-yaml',
                  'tiger.yaml', '--epochs', 1, '--val-interval', 1, '--seeds', 0,
                  '--models', 'ours', 'yoloxpose', '--workers', 0, '--out-dir', tmp_path)
    assert 'tiger_sample: l, 1 epochs' in stdout
    payload = json.loads((tmp_path / 'accuracy.json').read_text())
    assert not payload['failed'] and payload['settings']['arch'] == 'l'
    assert [(r['model'], [p['epoch'] for p in r['curve']]) for r in payload['runs']] == [
        ('ours', [1]), ('yoloxpose', [1])]
    configs = {r['model']: (Path(r['work_dir']) / 'bench_config.py').read_text()
               for r in payload['runs']}
    assert "arch='l'" in configs['ours'] and 'widen_factor = 1' in configs['yoloxpose']


YOLOV7_PEER = """
import json, sys
from pathlib import Path
import yolov7_pose_peer as p
out = {{}}
# 2 keypoints with (x, y): the first labelled, the second (0, 0) = unlabelled; 15 padding slots
row = p.convert_label_line('0 0.5 0.5 0.2 0.4 0.1 0.2 0 0', 2, 'a.txt:1')
out['xy'] = row
# (x, y, v): v = 0 hides the point whatever its coordinates
out['xyv'] = p.convert_label_line('1 0.5 0.5 0.2 0.4 0.1 0.2 2 0.3 0.4 0', 2, 'a.txt:2')
try:
    p.convert_label_line('0 0.5 0.5 0.2 0.4 0.1', 2, 'b.txt:7')
except ValueError as e:
    out['error'] = str(e)
tiny = dict(nc=80, anchors=[[1, 2]], backbone=[[-1, 1, 'Conv', [32, 3, 2]], [-1, 1, 'MP', []]],
            head=[[-1, 1, 'SP', [5]], [[0, 1], 1, 'IDetect', ['nc', 'anchors']]])
out['yaml'] = p.pose_model_yaml(tiny, 1)
# yolov7 (l): its RepConv before the head becomes the branch's Conv, same channels/kernel/stride
large = dict(nc=80, width_multiple=0.5, backbone=[[-1, 1, 'Conv', [32, 3, 2]]],
             head=[[-1, 1, 'RepConv', [64, 3, 1]], [0, 1, 'RepConv', [128, 3, 1]],
                   [[-1, 1], 1, 'IDetect', ['nc', 'anchors']]])
out['large'] = p.pose_model_yaml(large, 1)['head']
import yaml
(Path({tmp!r}) / 'large.yaml').write_text(yaml.safe_dump(large))
out['channels'] = p.detect_input_channels(str(Path({tmp!r}) / 'large.yaml'))
(Path({tmp!r}) / 'empty.yaml').write_text('')
try:
    p.detect_input_channels(str(Path({tmp!r}) / 'empty.yaml'))
except SystemExit as e:
    out['empty'] = str(e)
n = p.write_split(Path({images!r}), Path({tmp!r}) / 'train', 12)
labels = sorted((Path({tmp!r}) / 'train' / 'labels').glob('*.txt'))
out['split'] = [n, len(labels), len(list((Path({tmp!r}) / 'train' / 'images').iterdir())),
                {{len(l.split()) for f in labels for l in f.read_text().splitlines()}}]
# --repeat 3: every image listed three times, each copy with the image's label
n = p.write_split(Path({images!r}), Path({tmp!r}) / 'repeat', 12, repeat=3)
first = sorted(Path({images!r}).iterdir())[0]
stems = (first.stem, first.stem + '_r1', first.stem + '_r2', first.stem + '_r3')
copies = sorted(c for c in (Path({tmp!r}) / 'repeat' / 'images').iterdir() if c.stem in stems)
out['repeat'] = [n, [c.name for c in copies], {{c.resolve() == first.resolve() for c in copies}},
                 len({{(Path({tmp!r}) / 'repeat' / 'labels' / (c.stem + '.txt')).read_text()
                      for c in copies}})]
# --skip-test: the checkout's test.test (here a fake one that fails) returns zeros
root = Path({tmp!r}) / 'fake_yolov7'
root.mkdir()
(root / 'test.py').write_text('def test(*a, **k):\\n    raise RuntimeError("ran")\\n')
sys.path.insert(0, str(root))
p._skip_test(root)
import test
out['skip_test'] = [list(v) for v in test.test(dict(nc=2), batch_size=16)]
# a module the branch imports and this interpreter lacks stops the run before anything is written
out['missing'] = p.missing_imports({{'json': 'json', 'no_such_module_xyz': 'xyz-pip'}})
p.ITS_IMPORTS['no_such_module_xyz'] = 'xyz-pip'
try:
    p.prepare(None, None)
except SystemExit as e:
    out['prepare'] = str(e)
print(json.dumps(out, default=sorted))
"""


def test_yolov7_pose_peer_labels_and_model(tmp_path):
    """The original pose branch's 56-column labels (K keypoints in the first slots, the rest
    unlabelled, errors name file and line), listed --repeat times, yolov7-tiny turned into its
    keypoint model, its test pass replaced by zeros (--skip-test), and the modules its code
    imports checked before a run."""
    code = YOLOV7_PEER.format(images=str(SAMPLE / 'train' / 'images'), tmp=str(tmp_path))
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO / 'bench',
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['xy'] == [0, 0.5, 0.5, 0.2, 0.4, 0.1, 0.2, 2, 0, 0, 0] + [0] * 45
    assert out['xyv'] == [1, 0.5, 0.5, 0.2, 0.4, 0.1, 0.2, 2, 0, 0, 0] + [0] * 45
    assert out['error'] == 'b.txt:7: 6 values, expected 5 + 2 x 2 or x 3'
    assert out['yaml']['nc'] == 1 and out['yaml']['nkpt'] == 17
    assert out['yaml']['backbone'] == [[-1, 1, 'Conv', [32, 3, 2]],
                                       [-1, 1, 'nn.MaxPool2d', [2, 2]]]
    assert out['yaml']['head'] == [[-1, 1, 'nn.MaxPool2d', [5, 1, 2]],
                                   [[0, 1], 1, 'IKeypoint', ['nc', 'anchors', 'nkpt']]]
    assert out['large'] == [[-1, 1, 'Conv', [64, 3, 1]], [0, 1, 'Conv', [128, 3, 1]],
                            [[-1, 1], 1, 'IKeypoint', ['nc', 'anchors', 'nkpt']]]
    # the layers feeding IDetect (-1 from layer 3 is layer 2; layer 1), width_multiple 0.5
    assert out['channels'] == [64, 32]
    assert out['empty'] == (f"{tmp_path / 'empty.yaml'}: no 'backbone' and 'head' layer lists "
                            "(a model yaml of the main branch's cfg/training/)")
    images = len(list((SAMPLE / 'train' / 'images').iterdir()))
    assert out['split'] == [images, images, images, [56]]
    first = sorted((SAMPLE / 'train' / 'images').iterdir())[0]
    assert out['repeat'] == [3 * images, [first.name, f'{first.stem}_r1{first.suffix}',
                                          f'{first.stem}_r2{first.suffix}'], [True], 1]
    assert out['skip_test'] == [[0] * 7, [0, 0], [0, 0, 0]]
    assert out['missing'] == ['xyz-pip']
    assert out['prepare'].startswith('the original pose branch imports ')
    assert out['prepare'].endswith(' xyz-pip') and 'pip install ' in out['prepare']


PEER_STUBS = """
import importlib.util, json, os, sys
import yolov7_pose_peer as p
out = dict(torchvision_before='torchvision' in sys.modules)
out['stubbed'] = p.stub_missing(['seaborn', 'pandas', 'tensorboard', 'requests'])
import torchvision  # torch._dynamo asks importlib.util.find_spec('pandas') on import
out['pandas_origin'] = importlib.util.find_spec('pandas').origin
import pandas as pd  # what the original's utils/general.py and plots.py do with it
pd.options.display.max_columns = 10
labels = pd.DataFrame([[0.5, 0.5, 0.1, 0.2]], columns=['x', 'y', 'width', 'height'])
import seaborn as sns
sns.pairplot(labels, corner=True, diag_kind='auto')
from torch.utils.tensorboard import SummaryWriter  # its train.py
writer = SummaryWriter('tb_dir')
writer.add_scalar('train/box_loss', 0.1, 0)
out['tb_dir'] = os.path.exists('tb_dir')
import requests
try:
    requests.get('https://example.invalid/yolov7.pt')
except RuntimeError as e:
    out['download'] = str(e)
try:
    p.stub_missing(['numpy'])
except ValueError as e:
    out['unknown'] = str(e)
out['required'] = sorted(p.ITS_IMPORTS)
print(json.dumps(out))
"""


def test_yolov7_pose_peer_stands_in_for_plot_log_and_download_modules(tmp_path):
    """A machine with the GPU wheels' stack alone (not the lent H200, whose image has them)
    lacks what the original imports only to plot, log and download: no-op stand-ins take their
    place, findable by importlib.util.find_spec as torch._dynamo asks when torchvision is
    imported, and a download raises instead; what it trains and evaluates with stays
    required."""
    proc = subprocess.run([sys.executable, '-c', PEER_STUBS], cwd=REPO / 'bench',
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['torchvision_before'] is False
    assert out['stubbed'] == ['seaborn', 'pandas', 'tensorboard', 'requests']
    assert out['pandas_origin'] is None and out['tb_dir'] is False
    assert out['download'].startswith('the original tried a download')
    assert out['unknown'] == ("no stand-in for ['numpy']; stubbed are ('seaborn', 'pandas', "
                              "'tensorboard', 'requests')")
    assert out['required'] == ['PIL', 'cv2', 'matplotlib', 'scipy', 'tqdm', 'yaml']


def test_accuracy_bench_yolov7pose_needs_its_checkout():
    proc = subprocess.run(
        [sys.executable, str(REPO / 'bench' / 'accuracy.py'), '--models', 'yolov7pose',
         '--data-root', str(SAMPLE), '--train-images', 'train/images',
         '--val-images', 'val/images', '--out-dir', '/nonexistent/never'],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode != 0
    assert 'yolov7pose needs --yolov7-root' in proc.stderr


# a model yaml feeding its head yolov7-tiny's channels (the original's --arch tiny yaml)
TINY_HEAD_YAML = ('backbone: [[-1, 1, Conv, [32, 3, 2]]]\n'
                  'head: [[-1, 1, Conv, [128, 3, 1]], [-1, 1, Conv, [256, 3, 1]], '
                  '[-1, 1, Conv, [512, 3, 1]], [[1, 2, 3], 1, IDetect, [nc, anchors]]]\n')
MISSING_MODULE = """
import runpy, sys
import yolov7_pose_peer as p
p.ITS_IMPORTS['no_such_module_xyz'] = 'xyz-pip'  # a module the original imports, not installed
sys.argv = ['accuracy.py', '--models', *{models!r}, '--data-root', {root!r},
            '--train-images', 'train/images', '--val-images', 'val/images',
            '--yolov7-root', {tmp!r}, '--yolov7-tiny-cfg', {tiny!r}, '--out-dir', {out!r}]
runpy.run_path('accuracy.py', run_name='__main__')
"""


def _accuracy_bench(*models: str, tmp_path: Path):
    (tmp_path / 'train.py').write_text('')
    (tmp_path / 'tiny.yaml').write_text(TINY_HEAD_YAML)
    code = MISSING_MODULE.format(models=list(models), root=str(SAMPLE), tmp=str(tmp_path),
                                 tiny=str(tmp_path / 'tiny.yaml'), out=str(tmp_path / 'out'))
    return subprocess.run([sys.executable, '-c', code], cwd=REPO / 'bench', capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_accuracy_bench_yolov7pose_names_missing_modules_before_training(tmp_path):
    """A module the original's code imports is missing: the bench stops before any model
    trains (``ours`` comes first in --models) and names the pip install."""
    proc = _accuracy_bench('ours', 'yolov7pose', tmp_path=tmp_path)
    assert proc.returncode != 0
    assert 'the original pose branch imports' in proc.stderr, proc.stderr[-2000:]
    assert 'xyz-pip' in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / 'out').exists()  # nothing trained, nothing written


def test_accuracy_bench_yolov7pose_model_yaml_must_match_the_arch(tmp_path):
    """The original's model yaml feeding its head other channels than ours at ``--arch``
    (yolov7-tiny's 128/256/512 in an l comparison) stops the bench before anything trains."""
    (tmp_path / 'train.py').write_text('')
    tiny = tmp_path / 'yolov7-tiny.yaml'
    tiny.write_text(TINY_HEAD_YAML)
    proc = subprocess.run(
        [sys.executable, str(REPO / 'bench' / 'accuracy.py'), '--models', 'yolov7pose',
         '--arch', 'l', '--data-root', str(SAMPLE), '--yolov7-root', str(tmp_path),
         '--yolov7-cfg', str(tiny), '--out-dir', str(tmp_path / 'out')],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f'yolov7pose: --yolov7-cfg {tiny} feeds its head [128, 256, 512] channels, ours at '
        "--arch l [256, 512, 1024]: pass the main branch's cfg/training/yolov7.yaml, or the "
        '--arch of that file')
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('models, message', [
    (('yoloxpose', 'yoloxpos'), "unknown model 'yoloxpos'"),  # once trained `ours` silently
    (('yoloxpose', 'ours+no_such_variant'), "unknown variant 'no_such_variant'"),
    (('ours', 'yoloxpose+sigma_1k'), "unknown variant 'sigma_1k'"),  # ours' variants, not its
])
def test_accuracy_bench_checks_every_model_before_the_first_trains(tmp_path, models, message):
    proc = _accuracy_bench(*models, tmp_path=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
    assert not (tmp_path / 'out').exists()


CHECK_REVISION = """
import _common as c
head = ['aaa']
c.git_revision = lambda repo=c.REPO_ROOT: head[0]
c.machine_info(())  # a benchmark starts
head[0] = 'bbb'
payload = c.result_payload('x', 'now', {}, {})  # ... and ends after HEAD moved on
assert payload['turtle_plugin_revision'] == 'aaa', payload['turtle_plugin_revision']
print('ok')
"""


def test_results_record_the_revision_the_run_started_from():
    """A run of an hour records the code it ran, not the HEAD its checkout moved on to."""
    proc = subprocess.run([sys.executable, '-c', CHECK_REVISION], cwd=REPO / 'bench',
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().endswith('ok'), proc.stderr[-3000:]


PEER_DIVERGENCE = """
import json, torch
from pathlib import Path
import accuracy, yolov7_pose_peer as p
tmp = Path({tmp!r})
weights = tmp / 'train' / 'weights'
weights.mkdir(parents=True)
stop = tmp / p.DIVERGED_FILE
save = p.checkpoint_saver(torch.save, 10, stop)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
out = {{}}
for index in range(12):  # its 'epoch' is the 0-based index: epochs 1..12
    save(dict(epoch=index, model=model, ema=model), weights / 'last.pt')
    save(dict(epoch=index, model=model, ema=model), weights / 'best.pt')
out['finite'] = [sorted(f.name for f in weights.iterdir()), stop.exists()]
ema = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
with torch.no_grad():
    ema[1].running_var[2] = float('inf')
try:
    save(dict(epoch=12, model=model, ema=ema), weights / 'last.pt')
except p.Diverged as e:
    out['raised'] = str(e)
out['stopped'] = [sorted(f.name for f in weights.iterdir()), json.loads(stop.read_text()),
                  accuracy.read_divergence(tmp)]
save(dict(epoch=-1, model=model, ema=ema), weights / 'last.pt')  # strip_optimizer's re-save
bad = torch.nn.Linear(2, 2)
with torch.no_grad():
    bad.bias[1] = float('nan')
out['nan_model'] = p.non_finite_part(dict(model=bad, ema=model))
out['none'] = p.non_finite_part(dict(model=model, ema=None))
curve = lambda ap, px, epoch: [dict(epoch=epoch, AP=ap, AP50=ap, AP75=ap, box_mAP=0.5,
                                    err_px=px, pck=0.5)]
runs = [dict(model='m', seed=0, curve=curve(0.4, 20.0, 100), best_AP=0.4, minutes=3.0,
             diverged=None),
        dict(model='m', seed=1, curve=[dict(curve(0.1, 50.0, 10)[0], epoch=10),
                                       dict(curve(0.0, float('nan'), 13)[0])],
             best_AP=0.1, minutes=1.0, diverged=dict(epoch=13, non_finite='ema: x')),
        dict(model='d', seed=0, curve=curve(0.0, float('nan'), 10), best_AP=0.0, minutes=1.0,
             diverged=dict(epoch=10, non_finite='model: y'))]
summary = accuracy.summarise(runs)
out['summary'] = summary
out['table'] = accuracy.table_rows(summary)
print(json.dumps(out))
"""


def test_yolov7_pose_peer_stops_on_non_finite_weights(tmp_path):
    """The original's run ends at the first epoch whose saved weights hold a NaN or an
    infinity (its loss divides by a keypoint count that can be 0): that epoch's checkpoint is
    kept for scoring, diverged.json names it, and the accuracy summary lists the run as
    diverged instead of averaging its NaN-weight figures in."""
    code = PEER_DIVERGENCE.format(tmp=str(tmp_path))
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO / 'bench',
                          env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # finite weights: a copy every 10 epochs, best.pt never copied, nothing stopped
    assert out['finite'] == [['best.pt', 'epoch_10.pt', 'last.pt'], False]
    assert out['raised'] == 'epoch 13: non-finite weights (ema: 1.running_var)'
    # the epoch it diverged is copied though 13 is not a multiple of 10
    assert out['stopped'] == [['best.pt', 'epoch_10.pt', 'epoch_13.pt', 'last.pt'],
                              dict(epoch=13, non_finite='ema: 1.running_var'),
                              dict(epoch=13, non_finite='ema: 1.running_var')]
    assert out['nan_model'] == 'model: bias' and out['none'] is None
    m, d = out['summary']
    # model m: seed 0 trained, seed 1 diverged -> figures are seed 0's alone
    assert m['seeds'] == [0, 1] and m['epochs'] == 100
    assert m['AP']['values'] == [0.4] and m['err_px']['values'] == [20.0]
    assert m['best_AP']['values'] == [0.4] and m['minutes']['values'] == [3.0]
    assert m['diverged'] == [dict(seed=1, epoch=13, non_finite='ema: x', best_AP=0.1)]
    # model d: its only run diverged -> no figures, and the table says so
    assert d['AP'] is None and d['err_px'] is None and d['epochs'] == 10
    assert out['table'][0][-1] == 'seed 1 at epoch 13'
    assert out['table'][1][3] == 'n/a' and out['table'][1][-1] == 'seed 0 at epoch 10'


FINISHED_RUNS = """
import json
from pathlib import Path
from types import SimpleNamespace
import accuracy as a, yolov7_pose_peer as p
from turtle_plugin.engine.hooks import DIVERGED_FILE
tmp = Path({tmp!r})

def proc(name, returncode, aps, diverged=None):
    work = tmp / name
    (work / '20261202_000000' / 'vis_data').mkdir(parents=True)
    lines = [dict(loss=1.0, step=1)] + [{{'coco/AP': ap, 'kpt/err_px': 9.0, 'step': e}}
                                        for e, ap in aps]
    (work / '20261202_000000' / 'vis_data' / 'scalars.json').write_text(
        ''.join(json.dumps(line) + '\\n' for line in lines))
    if diverged:
        (work / DIVERGED_FILE).write_text(json.dumps(diverged))
    return SimpleNamespace(run=('ours', int(name[-1]), work), returncode=returncode,
                           started=None)

out = dict(same_file=DIVERGED_FILE == p.DIVERGED_FILE)
marker = dict(epoch=12, iterations_done=96, non_finite='model: w')
runs = [a.finished_run(proc('ours0', 0, [(10, 0.3), (20, 0.5)])),
        a.finished_run(proc('ours1', 1, [(10, 0.2)], marker)),   # stopped by the hook
        a.finished_run(proc('ours2', 1, [], dict(marker, epoch=4))),  # before evaluating
        a.finished_run(proc('ours3', 1, [(10, 0.2)]))]               # crashed
out['runs'] = [None if r is None else [r['seed'], len(r['curve']), r['best_AP'],
                                       r['diverged'] and r['diverged']['epoch']]
               for r, _ in runs]
out['failed'] = [f for _, f in runs]
out['summary'] = a.summarise([r for r, _ in runs if r])
out['only_early'] = a.summarise([runs[2][0]])
print(json.dumps(out))
"""


def test_accuracy_bench_counts_a_run_stopped_by_the_nan_stop_as_diverged(tmp_path):
    """Ours and YOLOX-Pose exit non-zero when DivergenceCheckHook stops them; with its
    diverged.json the bench lists the run as diverged with the curve it evaluated (none, when
    it diverged before the first evaluation), and only a run without it as failed."""
    proc = subprocess.run([sys.executable, '-c', FINISHED_RUNS.format(tmp=str(tmp_path))],
                          cwd=REPO / 'bench', env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['same_file']
    assert out['runs'] == [[0, 2, 0.5, None], [1, 1, 0.2, 12], [2, 0, None, 4], None]
    assert out['failed'] == [None, None, None, f'ours seed 3: exit 1, see '
                                               f'{tmp_path / "ours3" / "train.log"}']
    row, = out['summary']
    assert row['seeds'] == [0, 1, 2] and row['epochs'] == 20
    assert row['AP']['values'] == [0.5] and row['best_AP']['values'] == [0.5]
    assert row['diverged'] == [
        dict(seed=1, epoch=12, non_finite='model: w', best_AP=0.2),
        dict(seed=2, epoch=4, non_finite='model: w', best_AP=None)]
    early, = out['only_early']
    assert early['epochs'] == 4 and early['AP'] is None


TIME_LIMIT = """
import json, os, signal, subprocess, sys, time
from pathlib import Path
from types import SimpleNamespace
import accuracy as a
tmp = Path({tmp!r})
args = a.parse_args(['--time-limit', '0.5'])

def run(name, spec, aps, cut='', scalars=True):
    work = tmp / name
    work.mkdir()
    if scalars:  # MMEngine writes it at its first log line
        (work / '20261203_000000' / 'vis_data').mkdir(parents=True)
        lines = ''.join(json.dumps({{'coco/AP': ap, 'kpt/mean_err_px': 20.0 - e, 'step': e}})
                        + '\\n' for e, ap in aps)
        (work / '20261203_000000' / 'vis_data' / 'scalars.json').write_text(lines + cut)
    # a run with a child of its own (a DataLoader worker), in its own process group
    proc = subprocess.Popen(['bash', '-c', 'sleep 300 & echo $! > ' + str(work / 'child')
                             + '; wait'], start_new_session=True)
    while not (work / 'child').is_file() or not (work / 'child').read_text().strip():
        time.sleep(0.05)
    proc.started, proc.run, proc.env = time.time() - 90, (spec, 0, work), dict(os.environ)
    proc.log = open(work / 'train.log', 'w')
    return proc

out = {{}}
cut = run('ours', 'ours', [(30, 0.1), (60, 0.25)], cut='{{"coco/AP": 0.3')
child = int((tmp / 'ours' / 'child').read_text())
a.stop_run(cut, args, 'gt.json', grace=5.)
out['child_alive'] = os.path.exists(f'/proc/{{child}}') and \\
    open(f'/proc/{{child}}/stat').read().split()[2] != 'Z'
out['marker'] = json.loads((tmp / 'ours' / a.STOPPED_FILE).read_text())
record, failure = a.finished_run(cut)
out['record'] = [failure, [p['epoch'] for p in record['curve']], record['stopped']['reason'],
                 record['best_AP']]
# the original: stopped, then its saved epochs scored by the peer's evaluate stage
calls = []
a.yolov7pose_command = lambda args_, seed, gt, work: calls.append(
    (seed, gt, str(work))) or [sys.executable, '-c', 'import sys; print("scored", sys.argv[1:])']
orig = run('orig', 'yolov7pose', [(30, 0.05)])
out['orig_scoring'] = a.stop_run(orig, args, 'gt.json', grace=5.).wait()
orig.log.close()
out['ours_scoring'] = a.stop_run(run('again', 'ours', []), args, 'gt.json', grace=5.)
out['orig'] = [calls, (tmp / 'orig' / 'train.log').read_text().strip()]
# stopped before any evaluation: a failure that says so
early = run('early', 'ours', [])
a.stop_run(early, args, 'gt.json', grace=5.)
out['early'] = a.finished_run(early)[1]
earliest = run('earliest', 'yoloxpose', [], scalars=False)
a.stop_run(earliest, args, 'gt.json', grace=5.)
out['earliest'] = a.finished_run(earliest)[1]
full = dict(model='ours', seed=1, curve=[dict(epoch=300, AP=0.5, AP50=0.9, AP75=0.4,
                                              box_mAP=0.8, err_px=10.0, pck=0.8)],
            best_AP=0.5, minutes=7.0, diverged=None, stopped=None)
summary = a.summarise([record, full])
out['summary'] = summary
out['table'] = a.table_rows(summary)
out['only_stopped'] = a.table_rows(a.summarise([record]))
# a run whose predictions matched no ground truth has no pixel error (NaN): left out of the mean
unmatched = dict(full, seed=2, curve=[dict(full['curve'][0], err_px=float('nan'),
                                           pck=float('nan'))])
none = a.summarise([unmatched])
out['unmatched'] = [a.table_rows(a.summarise([full, unmatched, dict(full, seed=3)]))[0][7:9],
                    a.table_rows(none)[0][7], none[0]['err_px']['undefined']]
(tmp / 'bad' / 'r' / 'vis_data').mkdir(parents=True)
(tmp / 'bad' / 'r' / 'vis_data' / 'scalars.json').write_text('{{"coco/AP": 0.1\\n{{"step": 2}}\\n')
try:
    a.read_curve(tmp / 'bad')
except RuntimeError as e:
    out['bad'] = str(e)
print(json.dumps(out))
"""


def test_accuracy_bench_stops_runs_at_the_time_limit_and_reports_them(tmp_path):
    """At --time-limit a run's whole process group ends, stopped.json marks it, its curve up to
    the last whole evaluation is kept (a last line cut short is left out), the original's
    saved epochs are then scored, and the summary lists stopped runs apart, not averaged into
    the model's figures for the full budget."""
    proc = subprocess.run([sys.executable, '-c', TIME_LIMIT.format(tmp=str(tmp_path))],
                          cwd=REPO / 'bench', env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['child_alive'] is False
    assert out['marker']['reason'] == '--time-limit 0.5 min' and out['marker']['minutes'] >= 1.5
    assert out['record'] == [None, [30, 60], '--time-limit 0.5 min', 0.25]
    calls, log = out['orig']
    assert calls == [[0, 'gt.json', str(tmp_path / 'orig')]]
    assert log == "scored ['--stage', 'evaluate']" and out['orig_scoring'] == 0
    assert out['ours_scoring'] is None  # ours evaluates while it trains
    assert out['early'] == (f'ours seed 0: stopped at --time-limit 0.5 min before its first '
                            f'evaluation, see {tmp_path / "early" / "train.log"}')
    assert out['earliest'] == (f'yoloxpose seed 0: stopped at --time-limit 0.5 min before its '
                               f'first evaluation, see {tmp_path / "earliest" / "train.log"}')
    row, = out['summary']
    assert row['seeds'] == [0, 1] and row['epochs'] == 300
    assert row['AP']['values'] == [0.5] and row['err_px']['values'] == [10.0]
    assert row['stopped'] == [dict(seed=0, epoch=60, AP=0.25, err_px=-40.0, best_AP=0.25)]
    assert out['table'][0][-2:] == ['seed 0 at epoch 60 (AP 0.250)', '-']
    only, = out['only_stopped']
    assert out['unmatched'] == [['10.0 (10.0-10.0) [1 of 3 matched nothing]',
                                 '0.800 (0.800-0.800) [1 of 3 matched nothing]'],
                                'nan [1 of 1 matched nothing]', 1]
    assert only[2] == 60 and only[3] == 'n/a' and only[-2] == 'seed 0 at epoch 60 (AP 0.250)'
    assert out['bad'] == (f'{tmp_path / "bad" / "r" / "vis_data" / "scalars.json"}, line 1: '
                          'Expecting \',\' delimiter: line 1 column 16 (char 15)')


def _processes_naming(text: str) -> list:
    """Command lines of the live processes that contain ``text``."""
    found = []
    for stat in Path('/proc').glob('[0-9]*/cmdline'):
        try:
            cmdline = stat.read_bytes().replace(b'\0', b' ').decode(errors='replace')
            state = (stat.parent / 'stat').read_text().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != 'Z':
            found.append(cmdline)
    return found


@pytest.mark.slow
def test_accuracy_bench_ends_its_runs_when_it_is_terminated(tmp_path):
    """The runs train in process groups of their own (so --time-limit can end each with its
    DataLoader workers): a SIGTERM to the bench, as `timeout` sends, must end them too."""
    import signal
    import time
    bench = subprocess.Popen(
        [sys.executable, str(REPO / 'bench' / 'accuracy.py'), '--data-root', str(SAMPLE),
         '--data-yaml', 'tiger.yaml', '--epochs', '50', '--seeds', '0', '--models', 'ours',
         '--workers', '1', '--out-dir', str(tmp_path)], cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    log = tmp_path / 'ours_seed0' / 'train.log'
    deadline = time.time() + 240
    while time.time() < deadline and 'Epoch(train)' not in (
            log.read_text() if log.is_file() else ''):
        time.sleep(1)
    assert 'Epoch(train)' in log.read_text(), bench.communicate(timeout=60)[0][-3000:]
    assert _processes_naming(str(tmp_path / 'ours_seed0')), 'the run is not running'
    bench.send_signal(signal.SIGTERM)
    assert bench.wait(timeout=60) == 128 + signal.SIGTERM
    time.sleep(1)
    assert _processes_naming(str(tmp_path / 'ours_seed0')) == []


SCORED_RUN = """
import torch
import accuracy as a
from mmengine.registry import init_default_scope
from mmpose.registry import MODELS
args = a.parse_args(['--data-root', {sample!r}, '--data-yaml', 'tiger.yaml', '--workers', '0'])
gt = a.val_ground_truth(args, __import__('pathlib').Path({run!r}))
cfg = a.ours_config('ours', args, 0, gt)
# a run made before the flip test: no flip_indices in the samples' metainfo
pack = cfg.val_dataloader.dataset.pipeline[-1]
pack['meta_keys'] = tuple(k for k in pack['meta_keys'] if k != 'flip_indices')
cfg.dump({run!r} + '/bench_config.py')
init_default_scope('mmpose')
torch.manual_seed(0)
model = MODELS.build(cfg.model)
model.init_weights()
torch.save(dict(state_dict=model.state_dict(), meta=dict()), {run!r} + '/epoch_12.pth')
open({run!r} + '/epoch_3.pth', 'w').write('not a checkpoint: epoch 12 is the last')
"""


@pytest.mark.slow
def test_test_time_bench_scores_the_last_checkpoint_with_each_option(tmp_path):
    """bench/test_time.py on a run folder of bench/accuracy.py (its bench_config.py, written
    before the flip test existed): the last epoch's checkpoint (12, not 3) is scored by the
    run's own evaluator once per mode, and the options change the figures (random weights are
    not mirror-equivariant; merging averages overlapping candidates)."""
    run = tmp_path / 'ours_seed0'
    run.mkdir()
    setup = subprocess.run([sys.executable, '-c', SCORED_RUN.format(sample=str(SAMPLE),
                                                                  run=str(run))],
                           cwd=REPO / 'bench', capture_output=True, text=True, timeout=300)
    assert setup.returncode == 0, setup.stderr[-3000:]
    out = tmp_path / 'test_time.json'
    proc = subprocess.run([sys.executable, str(REPO / 'bench' / 'test_time.py'), str(run),
                           '--out', str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads(out.read_text())
    result, = payload['results']
    assert result['checkpoint'] == 'epoch_12.pth'
    modes = result['modes']
    assert list(modes) == ['plain', 'flip', 'merge', 'flip+merge']
    for figures in modes.values():
        assert set(figures) == {'AP', 'AP50', 'AP75', 'box_mAP', 'err_px', 'pck',
                                'test_seconds'}
        assert 0 <= figures['AP'] <= 1 and figures['err_px'] > 0
    assert len({figures['err_px'] for figures in modes.values()}) == 4
    assert payload['mean']['flip']['AP'] == modes['flip']['AP']
    assert 'Test-time options' in proc.stdout


def test_test_time_bench_rejects_an_unknown_mode_before_scoring():
    proc = subprocess.run([sys.executable, str(REPO / 'bench' / 'test_time.py'), 'no_such_run',
                           '--modes', 'plain', 'flip+mirror'], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode != 0
    assert "mode 'flip+mirror': use plain or options of ['flip', 'merge']" in proc.stderr
