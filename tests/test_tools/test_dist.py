"""tools/dist_train.sh and tools/dist_test.sh with 2 CPU processes (torchrun + gloo);
tools/slurm_train.sh and tools/slurm_test.sh with a fake srun (one task, gloo)."""
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import cfg_options, few_iterations

REPO = Path(__file__).resolve().parents[2]
# 8 training frames (2 iterations of batch 2 per process), every validation / test frame
SHRINK = cfg_options(few_iterations(train_images=8, batch_size=2, val_images=None))


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def _run(script, *args):
    env = dict(os.environ, PYTHON=sys.executable, PORT=_free_port(), MASTER_ADDR='127.0.0.1',
               OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', str(REPO / 'tools' / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.dist
def test_two_process_train_then_test_covers_every_val_image_once(tmp_path):
    config = 'configs/tiger_kpt_tiny.py'
    log = _run('dist_train.sh', config, '2', '--work-dir', str(tmp_path), '--cfg-options',
               *SHRINK)
    # MMEngine's environment report: a gloo process group of 2 ("GPU number" is the world size)
    assert 'Distributed training: True' in log and 'GPU number: 2' in log, log[-2000:]
    assert "dist_cfg: {'backend': 'gloo'}" in log
    assert 'coco/AP' in log and 'coco/bbox_mAP' in log
    ckpt = tmp_path / 'epoch_1.pth'
    assert ckpt.exists()

    preds = tmp_path / 'preds.pkl'
    log = _run('dist_test.sh', config, str(ckpt), '2', '--work-dir', str(tmp_path / 'test'),
               '--out', str(preds), '--cfg-options', *SHRINK)
    assert 'coco/AP' in log
    with open(preds, 'rb') as f:
        results = pickle.load(f)
    # the 8 validation frames, each predicted exactly once across the two ranks
    img_paths = sorted(Path(r['img_path']).name for r in results)
    expected = sorted(p.name for p in (REPO / 'data/tiger_sample/val/images').glob('*.jpg'))
    assert img_paths == expected


# ------------------------------------------------------------------------------------- Slurm
# A fake srun: records its arguments, then (FAKE_SRUN_EXEC=1) runs the command as one Slurm task
# would, with the variables srun sets (a world of 1 on this machine).
FAKE_SRUN = r'''#!/usr/bin/env bash
printf '%s\n' "$@" > "$FAKE_SRUN_LOG"
env | grep '^PYTHONPATH=' >> "$FAKE_SRUN_LOG"
[ "${FAKE_SRUN_EXEC:-0}" = 1 ] || exit 0
while [ $# -gt 0 ]; do
  case "$1" in -p) shift 2 ;; --*) shift ;; *) break ;; esac
done
SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 SLURM_NODELIST='node[07-08]' exec "$@"
'''
# scontrol show hostnames node[07-08] -> the nodes one per line; here the master is this machine
FAKE_SCONTROL = r'''#!/usr/bin/env bash
echo "$*" >> "$FAKE_SCONTROL_LOG"
printf '127.0.0.1\nnode08\n'
'''


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, body in (('srun', FAKE_SRUN), ('scontrol', FAKE_SCONTROL)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(('SLURM_', 'MASTER_'))}
    env.update(PATH=f'{bin_dir}:{os.environ["PATH"]}', PYTHON=sys.executable,
               FAKE_SRUN_LOG=str(tmp_path / 'srun.log'),
               FAKE_SCONTROL_LOG=str(tmp_path / 'scontrol.log'), OMP_NUM_THREADS='1')
    return env


def _run_slurm(script, env, *args):
    proc = subprocess.run(['bash', str(REPO / 'tools' / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    return proc


@pytest.mark.parametrize('script, tool, fourth', [('slurm_train.sh', 'train.py', 'work_dirs/x'),
                                                 ('slurm_test.sh', 'test.py', 'ckpt.pth')])
def test_slurm_scripts_build_the_srun_command(fake_slurm, script, tool, fourth):
    """One task per GPU, as MMDetection's and MMPose's scripts: GPUS tasks, GPUS_PER_NODE per
    node, SRUN_ARGS passed on, the tool with --launcher=slurm and the remaining arguments."""
    env = dict(fake_slurm, GPUS='16', GPUS_PER_NODE='4', CPUS_PER_TASK='3',
               SRUN_ARGS='--quotatype=auto --exclusive')
    proc = _run_slurm(script, env, 'gpu_part', 'turtles', 'configs/turtle_kpt.py', fourth,
                      '--cfg-options', 'train_cfg.max_epochs=2')
    assert proc.returncode == 0, proc.stderr
    *argv, pythonpath = Path(env['FAKE_SRUN_LOG']).read_text().splitlines()
    third = [f'--work-dir={fourth}'] if tool == 'train.py' else [fourth]
    assert argv == [
        '-p', 'gpu_part', '--job-name=turtles', '--gres=gpu:4', '--ntasks=16',
        '--ntasks-per-node=4', '--cpus-per-task=3', '--kill-on-bad-exit=1', '--quotatype=auto',
        '--exclusive', sys.executable, '-u', str(REPO / 'tools' / tool), 'configs/turtle_kpt.py',
        *third, '--launcher=slurm', '--cfg-options', 'train_cfg.max_epochs=2']
    assert pythonpath.split('=', 1)[1].split(':')[0] == str(REPO)
    usage = _run_slurm(script, fake_slurm, 'gpu_part', 'turtles')
    assert usage.returncode == 2 and 'usage:' in usage.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU (gloo) fallback')
def test_slurm_launcher_needs_slurm_variables(monkeypatch):
    from mmengine.config import Config

    from turtle_plugin.engine import setup_cpu_distributed
    monkeypatch.delenv('SLURM_PROCID', raising=False)
    with pytest.raises(RuntimeError, match='needs the SLURM_PROCID .*slurm_train.sh'):
        setup_cpu_distributed(Config(dict()), 'slurm')


@pytest.mark.slow
@pytest.mark.dist
def test_slurm_train_then_test_on_cpu(tmp_path, fake_slurm):
    """tools/slurm_train.sh through a fake srun that runs the command as Slurm task 0 of 1:
    train.py --launcher slurm takes rank, world size and master (scontrol on SLURM_NODELIST)
    from Slurm's variables, falls back to gloo without CUDA and trains an epoch; slurm_test.sh
    evaluates the checkpoint the same way."""
    env = dict(fake_slurm, FAKE_SRUN_EXEC='1', GPUS='1', GPUS_PER_NODE='1',
               MASTER_PORT=_free_port())
    proc = _run_slurm('slurm_train.sh', env, 'part', 'job', 'configs/tiger_kpt_tiny.py',
                      str(tmp_path / 'work'), '--cfg-options', *SHRINK,
                      'train_dataloader.dataset.indices=2', 'val_dataloader.dataset.indices=2')
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'Distributed training: True' in log and 'GPU number: 1' in log, log[-2000:]
    assert "dist_cfg: {'backend': 'gloo'}" in log
    assert Path(env['FAKE_SCONTROL_LOG']).read_text().split() == ['show', 'hostnames',
                                                                   'node[07-08]']
    ckpt = tmp_path / 'work' / 'epoch_1.pth'
    assert ckpt.exists()
    proc = _run_slurm('slurm_test.sh', dict(env, MASTER_PORT=_free_port()), 'part', 'job',
                      'configs/tiger_kpt_tiny.py', str(ckpt), '--work-dir',
                      str(tmp_path / 'test'), '--cfg-options', *SHRINK,
                      'test_dataloader.dataset.indices=2')
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'Distributed training: True' in log and 'coco/AP' in log
