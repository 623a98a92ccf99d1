#!/usr/bin/env bash
# Every benchmark in one prepared run, writing JSON + a log per step into OUT_DIR:
#
#   bash bench/run_all.sh OUT_DIR [cpu|cuda] [YOLOV7_ROOT] [DATA_ROOT]
#
# cpu (default): the CPU figures of BENCHMARKS.md (about 10 minutes on 2 cores).
# cuda: the GPU set (about 7 minutes on an H100/H200): training step of YOLOv7-l at batch 64
# fp16 and batch 256 bf16 + channels-last beside the original (OTA and YOLOv5 assigner),
# tiny beside the original and YOLOX-Pose-tiny, inference, end to end on Tiger-Pose, and last
# torch.compile (its compilation takes minutes).
# YOLOV7_ROOT: a local checkout of the original YOLOv7 (main branch) for the comparisons, and
# Y7_POSE=DIR (environment) one of its pose branch for the data pipeline's;
# DATA_ROOT: Tiger-Pose (train/images + train/labels), default ../shared/data/tiger_pose.
# Each step has its own time limit; a step that fails is logged and the next one runs.
set -u
OUT=${1:?usage: bash bench/run_all.sh OUT_DIR [cpu|cuda] [YOLOV7_ROOT] [DATA_ROOT]}
MODE=${2:-cpu}
Y7=${3:-}
DATA=${4:-../shared/data/tiger_pose}
PY=${PYTHON:-python}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS ARGS...: run one benchmark with a time limit, log it
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s)"
    timeout "$limit" "$PY" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    grep -v 'Corrupt JPEG' "$OUT/$name.log" | grep -E '^\||^written|Error|error|Traceback' | tail -40
    echo "=== $name rc=$rc"
    # PACK=file.tgz: keep a tarball of OUT_DIR up to date (for machines that return few files)
    if [ -n "${PACK:-}" ]; then tar czf "$PACK" -C "$(dirname "$OUT")" "$(basename "$OUT")"; fi
}

y7=()
[ -n "$Y7" ] && y7=(--yolov7-root "$Y7")

if [ "$MODE" = cuda ]; then
    cuda=(bench/train_step.py --devices cuda "${y7[@]}")
    step ts_l_b64_fp16 120 "${cuda[@]}" --archs l --batches 64 --precisions fp16 \
        --assigners ota v5 --tasks det kpt --impls ours yolov7 --out "$OUT/ts_l_b64_fp16.json"
    step ts_l_b256_bf16_cl 150 "${cuda[@]}" --archs l --batches 256 --precisions bf16 \
        --channels-last on --assigners ota v5 --tasks det --impls ours yolov7 --iters 5 \
        --warmup 3 --out "$OUT/ts_l_b256_bf16_cl.json"
    step ts_tiny_b64_fp16 90 "${cuda[@]}" --archs tiny --batches 64 --precisions fp16 \
        --assigners ota --tasks det kpt --out "$OUT/ts_tiny_b64_fp16.json"
    step inference 80 bench/inference.py --no-cpu --archs tiny l "${y7[@]}" \
        --out "$OUT/inference.json"
    step e2e_tiny_b64 90 bench/end_to_end.py configs/tiger_kpt_tiny.py --data-root "$DATA" \
        --epochs 4 --batch 64 --workers 12 --amp bfloat16 --channels-last \
        --out "$OUT/e2e_tiny_b64.json"
    step loader_w14 60 bench/end_to_end.py configs/tiger_kpt_tiny.py --data-root "$DATA" \
        --epochs 3 --repeat 8 --batch 64 --workers 14 --loader-only --out "$OUT/loader_w14.json"
    step ts_l_b256_compile 180 "${cuda[@]}" --archs l --batches 256 --precisions bf16 \
        --channels-last on --assigners ota --tasks det --impls ours --compile --iters 5 \
        --warmup 3 --out "$OUT/ts_l_b256_compile.json"
else
    cpu=(bench/train_step.py --devices cpu "${y7[@]}")
    step train_step_cpu 900 "${cpu[@]}" --archs tiny l --batches 8 --assigners ota v5 \
        --out "$OUT/train_step_cpu.json"
    # the data pipeline's peer is the original's pose branch (its load_mosaic carries keypoints)
    y7pose=()
    [ -n "${Y7_POSE:-}" ] && y7pose=(--yolov7-root "$Y7_POSE")
    step data_pipeline 900 bench/data_pipeline.py "${y7pose[@]}" --out "$OUT/data_pipeline.json"
    step inference_cpu 900 bench/inference.py --no-cuda --threads 1 "${y7[@]}" \
        --out "$OUT/inference_cpu.json"
    step e2e_tiny_cpu 600 bench/end_to_end.py configs/tiger_kpt_tiny.py --data-root "$DATA" \
        --epochs 3 --device cpu --out "$OUT/e2e_tiny_cpu.json"
fi
