python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpuwheels/*.whl
# bench/gpu_accuracy.sh DATA_ROOT: issue 10's GPU comparison in one command -- ours, MMPose's
# YOLOX-Pose and (with YOLOV7_ROOT / YOLOV7_CFG) the original pose branch's own train.py, from
# scratch, 300 epochs, at YOLOv7-l size (ARCH=tiny for the small models), the runs of SEEDS
# trained at once on the one GPU, scored by bench/accuracy.py's one evaluator. At most
# LIMIT_MIN minutes of training (the bench's --time-limit: what is still training then is
# stopped and reported as stopped at its last evaluation, its curve kept), then the table, the
# JSON and the plot; the command ends within the device's 600 s per call (install and
# evaluation included) with the defaults. Run from the repository root, as the device tool does.
# The first line above is gpu-wheels/README.md's install line (no network there), reading the
# wheels from .gpuwheels/.
#
# DATA_ROOT is a YOLO layout with its metainfo.py, e.g. bench_data/mirror_mouse from
# `bash bench/prepare_mirror_mouse.sh PATH/TO/lightning-pose` (6 MiB). Prepare, on the
# development machine, in the checkout the session sends (all three folders are git-ignored;
# they travel as `carry`, 39 + 6 + 1.4 MiB of the 64 MiB that may travel with the
# 5 MiB of tracked files):
#
#   mkdir -p .gpuwheels && cp ../shared/gpu-wheels/wheels/*.whl .gpuwheels/
#   (the lent H200's image also holds tqdm, six, rich, pandas, tensorboard, seaborn and
#   requests: the device tool's KINDS.md. On a machine with the gpu-wheels' stack alone, add
#   `pip download --no-deps --only-binary=:all: -d .gpuwheels tqdm six rich` and rich's
#   markdown-it-py, mdurl and pygments; the original's plot, log and download imports then get
#   no-op stand-ins: bench/yolov7_pose_peer.py STUBBED)
#   mkdir -p .gpuyolov7/pose && git -C POSE_BRANCH_CHECKOUT archive HEAD | tar x -C .gpuyolov7/pose
#   git -C MAIN_BRANCH_CHECKOUT show HEAD:cfg/training/yolov7.yaml > .gpuyolov7/yolov7.yaml
#
# then run(command='YOLOV7_ROOT=.gpuyolov7/pose YOLOV7_CFG=.gpuyolov7/yolov7.yaml
#          bash bench/gpu_accuracy.sh bench_data/mirror_mouse',
#          carry=['.gpuwheels', 'bench_data/mirror_mouse', '.gpuyolov7'], timeout_s=600).
# A session has 15 minutes of device time, the machine's start included, and the machine goes
# back after 30 s idle: first a smoke call, the same with `EPOCHS=3 LIMIT_MIN=1.5` in front and
# timeout_s=300 (every run starts on CUDA; the epochs its stopped runs reached give the pace),
# then at once the full call, LIMIT_MIN fitted to the device time left (`status`): the command
# takes about LIMIT_MIN + 2.5 minutes. Runs listed as stopped short of 300 epochs mean the time
# did not reach the budget: their curves are what the session measured, and a later session
# runs SEEDS=0 and SEEDS=1 apart; `python bench/accuracy.py --summarise-only --out-dir DIR ...`
# over the unpacked run folders of both calls then makes one table.
# Results: $OUT/gpu_accuracy.tgz (run folders without checkpoints, logs, the bench's JSON and
# plot, GPU utilisation every 10 s), packed every minute and at the end, and $OUT/summary.log.
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
set -u
DATA=${1:?usage: bash bench/gpu_accuracy.sh DATA_ROOT (YOLO layout with metainfo.py)}
OUT=${OUT:?the device machine sets OUT, the folder whose files come back}
PY=${PYTHON:-python3}
ARCH=${ARCH:-l}
EPOCHS=${EPOCHS:-300}
SEEDS=${SEEDS:-0 1}
LIMIT_MIN=${LIMIT_MIN:-7}  # training wall time; install, start-up and scoring come on top
WORKERS=${WORKERS:-2}
RES=${RES:-/tmp/gpu_accuracy}  # everything the bench writes, packed into $OUT
METAINFO=${METAINFO:-$DATA/metainfo.py}
MODELS=(ours yoloxpose) ORIGINAL=()
if [ -n "${YOLOV7_ROOT:-}" ] && [ -n "${YOLOV7_CFG:-}" ]; then
    MODELS+=(yolov7pose) ORIGINAL=(--yolov7-root "$YOLOV7_ROOT" --yolov7-cfg "$YOLOV7_CFG")
fi
read -r -a SEED_LIST <<< "$SEEDS"
JOBS=${JOBS:-$((${#MODELS[@]} * ${#SEED_LIST[@]}))}
mkdir -p "$RES"

pack() {  # the results so far into $OUT, checkpoints left out (the device returns 8 files)
    tar czf "$OUT/gpu_accuracy.tgz" --exclude='*.pth' --exclude='*.pt' --exclude='*.part' \
        -C "$(dirname "$RES")" "$(basename "$RES")" 2> /dev/null
}

{   # the machine, the GPU, the packages
    date -u; nproc; free -g
    command -v nvidia-smi > /dev/null && nvidia-smi
    "$PY" -c 'import torch, numpy, cv2; print(torch.__version__, torch.cuda.is_available(),
numpy.__version__, cv2.__version__)'
} > "$RES/machine.txt" 2>&1
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 10 \
        > "$RES/gpu_util.csv" 2>&1 &
    SMI=$!
fi
pack
(while sleep 60; do pack; done) > /dev/null 2>&1 &  # its sleep outlives a kill harmlessly
PACKER=$!

CMD=(bench/accuracy.py --arch "$ARCH" --data-root "$DATA" --metainfo "$METAINFO"
     --epochs "$EPOCHS" --val-interval $((EPOCHS / 10 > 0 ? EPOCHS / 10 : 1))
     --seeds "${SEED_LIST[@]}" --models "${MODELS[@]}" ${ORIGINAL[@]+"${ORIGINAL[@]}"}
     --jobs "$JOBS" --workers "$WORKERS" --time-limit "$LIMIT_MIN" --out-dir "$RES/acc")
echo "=== accuracy ($(date -u +%H:%M:%S), training limit ${LIMIT_MIN} min): ${CMD[*]}" \
    | tee -a "$OUT/summary.log"
# the bench stops its own runs at --time-limit; this outer limit only guards the scoring after
timeout -k 15 "$(awk -v m="$LIMIT_MIN" 'BEGIN { printf "%d", m * 60 + 90 }')" \
    "$PY" "${CMD[@]}" > "$RES/accuracy.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then  # cut short: the table from whatever the runs evaluated
    echo "=== accuracy rc=$rc: summarising the runs' evaluations so far" | tee -a "$OUT/summary.log"
    timeout -k 5 30 "$PY" "${CMD[@]}" --summarise-only > "$RES/summarise.log" 2>&1
fi
grep -h -E '^\||^\[accuracy\]|^no run finished| seed [0-9]+: |Error|Traceback' \
    "$RES/accuracy.log" "$RES/summarise.log" \
    2> /dev/null | tail -60 | tee -a "$OUT/summary.log"
kill "$PACKER" ${SMI:+"$SMI"} 2> /dev/null
# the runs train in process sessions of their own, which the device machine leaves running
# after the command; the bench ends them itself, this is for a bench that was killed
pkill -KILL -f -- "$RES/acc/" 2> /dev/null
pack
echo "=== done rc=$rc $(date -u +%H:%M:%S)" | tee -a "$OUT/summary.log"
