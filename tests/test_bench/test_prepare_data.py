"""The bench's data preparation scripts, on fake checkouts with the upstream layouts: what goes
where, the split, flips and sigmas, and the licence and provenance beside the data."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
PROJECT = 'examples/openfield-Pranav-2018-10-30'


def _git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME='t', GIT_AUTHOR_EMAIL='t@t', GIT_COMMITTER_NAME='t',
               GIT_COMMITTER_EMAIL='t@t')
    return subprocess.run(['git', *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def fake_deeplabcut(root: Path, frames: int = 10) -> str:
    """A git repository laid out as DeepLabCut's: the open-field example's table (one row per
    frame; frame 3 has its snout unlabelled) and frames, its config, the licence. Returns the
    commit."""
    folder = root / PROJECT / 'labeled-data' / 'm4s1'
    folder.mkdir(parents=True)
    rows = ['scorer,Pranav,Pranav,Pranav,Pranav,Pranav,Pranav,Pranav,Pranav',
            'bodyparts,snout,snout,leftear,leftear,rightear,rightear,tailbase,tailbase',
            'coords,x,y,x,y,x,y,x,y']
    for i in range(frames):
        snout = ',' if i == 3 else f'{100 + i},{200}'
        rows.append(f'labeled-data/m4s1/img{i:04d}.png,{snout},{90 + i},{190},{110 + i},{190},'
                    f'{100 + i},{260}')
        cv2.imwrite(str(folder / f'img{i:04d}.png'), np.zeros((480, 640, 3), np.uint8))
    (folder / 'CollectedData_Pranav.csv').write_text('\n'.join(rows) + '\n')
    (root / PROJECT / 'config.yaml').write_text('Task: openfield\n')
    (root / 'LICENSE').write_text('GNU LESSER GENERAL PUBLIC LICENSE\n')
    _git(root, 'init', '-q')
    _git(root, 'add', '.')
    _git(root, 'commit', '-q', '-m', 'fake')
    return _git(root, 'rev-parse', 'HEAD')


def test_prepare_openfield_converts_the_example_as_the_held_out_protocol(tmp_path):
    commit = fake_deeplabcut(tmp_path / 'dlc')
    out = tmp_path / 'openfield'
    proc = subprocess.run(['bash', str(REPO / 'bench' / 'prepare_openfield.sh'),
                           str(tmp_path / 'dlc'), str(out)],
                          env=dict(os.environ, PYTHON=sys.executable), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # every 5th frame to val (frames 4 and 9 of 10), one mouse per frame
    val = sorted(p.name for p in (out / 'val' / 'images').iterdir())
    assert val == ['m4s1_img0004.png', 'm4s1_img0009.png']
    assert len(list((out / 'train' / 'images').iterdir())) == 8
    data = yaml.safe_load((out / 'data.yaml').read_text())
    assert data['kpt_shape'] == [4, 2] and data['names'] == {0: 'mouse'}
    assert data['flip_idx'] == [0, 2, 1, 3]  # the ears swap
    assert data['kpt_names'] == {0: ['snout', 'leftear', 'rightear', 'tailbase']}
    namespace = {}
    exec((out / 'metainfo.py').read_text(), namespace)
    assert namespace['dataset_info']['joint_weights'] == [1.0] * 4
    assert namespace['dataset_info']['sigmas'] == [0.05] * 4
    # frame 3: its unlabelled snout is an invisible keypoint, the others are where the table
    # says, in normalised coordinates (x / 640, y / 480)
    label = (out / 'train' / 'labels' / 'm4s1_img0003.txt').read_text().split()
    keypoints = np.array(label[5:], float).reshape(4, 2)
    assert np.allclose(keypoints[0], 0)
    np.testing.assert_allclose(keypoints[1:] * [640, 480], [[93, 190], [113, 190], [103, 260]])
    assert (out / 'LICENSE').read_text().startswith('GNU LESSER')
    note = (out / 'SOURCE_NOTE.md').read_text()
    assert commit in note and 'Held out of the' in note
