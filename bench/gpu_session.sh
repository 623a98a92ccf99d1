python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpuwheels/*.whl
# bench/gpu_session.sh DATA_ROOT: issue 13's GPU session (why 14 DataLoader workers gave 16
# images/s each on the 16-core H200 host) in one command: at most 9.5 minutes (the step limits),
# of the 15 minutes of device time (machine start included). Run from the repository root, as
# the device tool does.
# The first line above is gpu-wheels/README.md's install line (no network there), reading the
# wheels from .gpuwheels/. Every step has its own time limit; results go to $OUT (set by the
# device machine) as they come, packed in $OUT/gpu_session.tgz after each step (the device
# returns at most 8 files), with $OUT/summary.log holding every step's tables.
#
# Prepare, on the development machine, in the checkout the session sends (both folders are
# git-ignored; they travel as `carry`, 39 + ~11 MiB of the 64 MiB that may travel):
#
#   mkdir -p .gpuwheels && cp ../shared/gpu-wheels/wheels/*.whl .gpuwheels/
#   S=../shared/data/tiger_pose/train G=.gpudata/tiger_pose/train   # 120 of the 210 frames
#   mkdir -p $G/images $G/labels && ls $S/images | head -120 | while read f; do
#       cp $S/images/$f $G/images/ && cp $S/labels/${f%.*}.txt $G/labels/; done
#
# then run(command='bash bench/gpu_session.sh .gpudata/tiger_pose',
#          carry=['.gpuwheels', '.gpudata'], timeout_s=600).
# --repeat 14 on 120 frames makes 1680 samples per epoch, as --repeat 8 on the 210 frames of
# the earlier GPU runs (BENCHMARKS.md, End to end). Every end-to-end step also reports the
# model-only step of the same runner on real batches and the ratio real epoch / model-only.
#
# Optional, the original YOLOv7's own train.py epoch on the same data (issue 13: ours >= 3x):
# set YOLOV7_ROOT (a checkout of its pose branch) and YOLOV7_TINY_CFG (the main branch's
# cfg/training/yolov7-tiny.yaml), both carried, e.g. git-ignored .gpuyolov7/{pose,tiny.yaml}
# (1.4 MiB), and YOLOV7_PYTHONPATH for what it imports that the machine may lack (tqdm,
# pandas, requests, tensorboard; seaborn is stubbed): run(command='YOLOV7_ROOT=.gpuyolov7/pose
# YOLOV7_TINY_CFG=.gpuyolov7/tiny.yaml bash bench/gpu_session.sh .gpudata/tiger_pose', carry=
# [..., '.gpuyolov7']). Step 4 then also trains the original (its limit grows by 150 s, the
# step limits to 11 minutes). Without them nothing changes.
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
set -u
if [ -n "${YOLOV7_PYTHONPATH:-}" ]; then
    export PYTHONPATH=$PYTHONPATH:$(realpath "$YOLOV7_PYTHONPATH")
fi
ORIGINAL=() ORIGINAL_S=0
if [ -n "${YOLOV7_ROOT:-}" ] && [ -n "${YOLOV7_TINY_CFG:-}" ]; then
    ORIGINAL=(--yolov7-root "$YOLOV7_ROOT" --yolov7-tiny-cfg "$YOLOV7_TINY_CFG") ORIGINAL_S=150
fi
DATA=${1:?usage: bash bench/gpu_session.sh DATA_ROOT (YOLO layout: train/images, train/labels)}
OUT=${OUT:?the device machine sets OUT, the folder whose files come back}
PY=${PYTHON:-python3}
RES=${RES:-/tmp/gpu_session}  # logs and JSON, packed into $OUT
CFG=configs/tiger_kpt_tiny.py
mkdir -p "$RES"

pack() {  # the results so far into $OUT (at most 8 files come back)
    tar czf "$OUT/gpu_session.tgz" -C "$(dirname "$RES")" "$(basename "$RES")"
}

step() {  # step NAME SECONDS ARGS...: one command with a time limit, its log and tables kept
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*" | tee -a "$OUT/summary.log"
    timeout -k 15 "$limit" "$PY" "$@" > "$RES/$name.log" 2>&1
    local rc=$?
    grep -v 'Corrupt JPEG' "$RES/$name.log" \
        | grep -E '^\||^[0-9]+ workers|^worker |^main |^machine|^the original|Error|Traceback' \
        | tail -80 \
        | tee -a "$OUT/summary.log"
    echo "=== $name rc=$rc" | tee -a "$OUT/summary.log"
    pack
}

{   # the machine: cores behind the vCPUs (hyper-threads), memory, GPU, packages
    date -u; nproc; lscpu; free -g; cat /proc/pressure/cpu 2>/dev/null
    # a container's CPU quota (nproc does not show it) and how often it throttled
    head /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.stat /sys/fs/cgroup/cpu/cpu.cfs_quota_us \
        /sys/fs/cgroup/cpu/cpu.stat 2>/dev/null
    command -v nvidia-smi > /dev/null && nvidia-smi -L
    "$PY" -c 'import torch, cv2, numpy; print(torch.__version__, torch.get_num_threads(),
cv2.__version__, cv2.getNumThreads(), numpy.__version__)'
} > "$RES/machine.txt" 2>&1
pack

E2E=(bench/end_to_end.py "$CFG" --data-root "$DATA" --epochs 3 --repeat 14 --batch 64)
DIAG=(bench/loader_diagnosis.py "$CFG" --data-root "$DATA" --repeat 14 --batch 64)

# 1. inside the workers: images/s per worker, wall/CPU (starvation), CPU ms per sample
#    (slower CPUs, contention), page faults, threads, for 14 / 8 / 4 / 1 workers
step diag_sweep 150 "${DIAG[@]}" --workers 14 8 4 1 --out "$RES/diag_sweep.json"
# 2. the real epoch of the earlier runs (222 img/s, 47 % data wait), now with the main
#    process's CPU time by thread
step e2e_w14 110 "${E2E[@]}" --workers 14 --amp bfloat16 --channels-last \
    --out "$RES/e2e_w14.json"
# 3. the same DataLoader alone
step loader_w14 50 "${E2E[@]}" --workers 14 --loader-only --out "$RES/loader_w14.json"
# 4. the plugin's automatic settings: workers from the CPUs, decoded-image cache when it fits;
#    with YOLOV7_ROOT, then the original's train.py on the same data, batch, workers, epochs
step e2e_auto $((110 + ORIGINAL_S)) "${E2E[@]}" --workers auto --image-cache-mb auto \
    --amp bfloat16 --channels-last ${ORIGINAL[@]+"${ORIGINAL[@]}"} --out "$RES/e2e_auto.json"
# 5. inside the workers with the automatic settings, and 14 workers against a busy main
#    process (8 OpenMP threads): does the training process's own CPU use starve them?
step diag_auto 50 "${DIAG[@]}" --workers auto --image-cache-mb auto --out "$RES/diag_auto.json"
step diag_main_load 45 "${DIAG[@]}" --workers 14 --main-load 8 --epochs 2 \
    --out "$RES/diag_main_load.json"
head /sys/fs/cgroup/cpu.stat /sys/fs/cgroup/cpu/cpu.stat >> "$RES/machine.txt" 2>/dev/null
pack
echo "=== done $(date -u +%H:%M:%S)" | tee -a "$OUT/summary.log"
