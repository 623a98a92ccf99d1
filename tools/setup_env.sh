#!/usr/bin/env bash
# One command that sets up everything turtle_plugin needs on a fresh machine:
#
#     bash tools/setup_env.sh            # creates ./.venv (or $VENV) and installs the pinned stack
#
# Order matters: torch first, then mmengine, then mmcv built from source against *that* torch
# (compiled ops), then mmdet / mmpose / the package itself, all under requirements/constraints.txt
# so no later install can move torch. Idempotent: a venv whose mmcv ops load against the same
# torch is left alone, and a built mmcv wheel is cached in $TURTLE_CACHE (keyed by torch and
# Python version) so a second fresh venv installs it in seconds instead of rebuilding.
#
# GPU users: run with MMCV_WITH_CUDA=1 on a machine with nvcc matching torch's CUDA; mmcv is then
# built with CUDA ops (FORCE_CUDA=1) and cached under a separate key.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
VENV="${VENV:-$ROOT/.venv}"
CACHE="${TURTLE_CACHE:-$HOME/.cache/turtle_plugin}"
WITH_CUDA="${MMCV_WITH_CUDA:-0}"
CONSTRAINTS="$ROOT/requirements/constraints.txt"

log() { printf '\n[setup_env] %s\n' "$*"; }
die() { printf '\n[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found; set PYTHON=/path/to/python3.11"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -c "$CONSTRAINTS")

log "base tools"
"${PIP[@]}" -q --upgrade pip wheel ninja

log "torch, torchvision, numpy, opencv"
"${PIP[@]}" -q torch==2.14.1 torchvision==0.29.1 "numpy<2" "opencv-python<4.11"
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
PY_TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"

log "mmengine"
"${PIP[@]}" -q mmengine==0.10.7

# mmcv 2.1.0 and chumpy only build with setuptools<70, while torch 2.14.1 declares
# setuptools>=77: use the old one for those two builds, then put a new one back -- below 81,
# which removed pkg_resources (mmengine's package_utils, used by mmpose.apis, imports it).
old_setuptools() { "$PY" -m pip install -q --disable-pip-version-check "setuptools<70"; }
new_setuptools() { "$PY" -m pip install -q --disable-pip-version-check "setuptools>=77.0.3,<81"; }

mmcv_ops_ok() {
  "$PY" - <<'PYEOF' >/dev/null 2>&1
import torch, mmcv
from mmcv.ops import nms
assert mmcv.__version__ == '2.1.0', mmcv.__version__
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], keep
PYEOF
}

if mmcv_ops_ok; then
  log "mmcv 2.1.0 with working ops already installed for torch $TORCH_VERSION: not rebuilding"
else
  KEY="torch${TORCH_VERSION}-${PY_TAG}-$([ "$WITH_CUDA" = 1 ] && echo cuda || echo cpu)"
  WHEEL_DIR="$CACHE/mmcv-2.1.0-$KEY"
  if ! ls "$WHEEL_DIR"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    log "building mmcv 2.1.0 with ops from source for $KEY (about 15 minutes on 2 cores)"
    old_setuptools
    SRC="$(mktemp -d)"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
      --no-build-isolation -d "$SRC" mmcv==2.1.0
    tar -xzf "$SRC"/mmcv-2.1.0.tar.gz -C "$SRC"
    # mmcv 2.1.0 compiles with -std=c++17, but torch >= 2.10 headers require C++20.
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/mmcv-2.1.0/setup.py"
    grep -q -- '-std=c++20' "$SRC/mmcv-2.1.0/setup.py" || die "could not patch mmcv's C++ standard"
    mkdir -p "$WHEEL_DIR.tmp"
    MMCV_WITH_OPS=1 FORCE_CUDA="$WITH_CUDA" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "$PY" -m pip wheel --disable-pip-version-check --no-build-isolation --no-deps \
      -w "$WHEEL_DIR.tmp" "$SRC/mmcv-2.1.0"
    rm -rf "$SRC"
    rm -rf "$WHEEL_DIR" && mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"
  else
    log "installing cached mmcv wheel from $WHEEL_DIR"
  fi
  "${PIP[@]}" -q --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-2.1.0-*.whl
  "${PIP[@]}" -q addict packaging pillow pyyaml yapf
  mmcv_ops_ok || die "mmcv 2.1.0 is installed but its compiled ops do not load or give wrong results \
(was torch changed after the build?). Remove $WHEEL_DIR and run this script again."
fi

log "mmdet, mmpose and their dependencies (chumpy needs --no-build-isolation)"
if ! "$PY" -c 'import chumpy' >/dev/null 2>&1; then
  old_setuptools
  "${PIP[@]}" -q --no-build-isolation chumpy==0.70
fi
new_setuptools
"${PIP[@]}" -q mmdet==3.3.0 mmpose==1.3.2 -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"

log "turtle_plugin (editable)"
"${PIP[@]}" -q --no-deps --no-build-isolation -e "$ROOT"

log "checking the installed stack"
mmcv_ops_ok || die "mmcv ops stopped working after installing mmdet/mmpose: a dependency changed torch"
"$PY" -c "import turtle_plugin, xtcocotools, pycocotools, mmpose.apis, mmdet.apis; print('turtle_plugin', turtle_plugin.__version__, 'OK')"
log "done. Run the tests with:  $VENV/bin/python -m pytest tests"
