"""tools/dist_train.sh and tools/dist_test.sh with 2 CPU processes (torchrun + gloo)."""
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHRINK = [
    'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
    'train_dataloader.dataset.indices=8', 'val_dataloader.batch_size=2',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
    'test_dataloader.batch_size=2', 'test_dataloader.num_workers=0',
    'test_dataloader.persistent_workers=False', 'default_hooks.checkpoint.save_best=None'
]


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
