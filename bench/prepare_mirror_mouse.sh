#!/usr/bin/env bash
# The second dataset of the accuracy bench: Lightning Pose's mirror-mouse example, in the YOLO
# keypoint layout, with its licence and provenance beside it.
#
#   bash bench/prepare_mirror_mouse.sh LIGHTNING_POSE_CHECKOUT [OUT_DIR]
#
# LIGHTNING_POSE_CHECKOUT: a git clone of https://github.com/paninski-lab/lightning-pose (MIT
# licence; the example data sits in its repository, under the same licence). Nothing of it is
# committed here. OUT_DIR defaults to bench_data/mirror_mouse (ignored by git).
#
# The data: 90 labelled frames (406x396, grayscale PNG) of a head-fixed mouse running on a wheel,
# filmed once with a mirror so that each frame shows a side view (top of the frame) and a view
# from below (bottom); 17 body parts labelled by one annotator (`rick`): four paws, tail base,
# tail middle and nose in each view, plus three obstacle points. Converted with
# tools/dataset_converters/dlc2yolo.py:
#   * each view is one instance of class `mouse` with 7 keypoints (--views _top _bot), so every
#     frame has two instances;
#   * the obstacle points are left out (--drop): they are not on the animal;
#   * a horizontal flip swaps left and right paws (--swap paw1LH:paw4RH paw2LF:paw3RF);
#   * OKS sigma 0.05 for every keypoint (the dataset defines none; 0.05 is the value of the
#     issue's held-out comparison and within COCO's 0.025-0.107 body sigmas);
#   * boxes are the keypoints' box padded by 10 % of its longer side (the data has no boxes);
#   * every 5th frame goes to val: 72 train / 18 val frames, 144 / 36 instances.
set -euo pipefail
SRC=${1:?usage: bash bench/prepare_mirror_mouse.sh LIGHTNING_POSE_CHECKOUT [OUT_DIR]}
OUT=${2:-bench_data/mirror_mouse}
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}
mkdir -p "$OUT/source"
OUT=$(cd "$OUT" && pwd)
# the example data and the licence at the checkout's HEAD (a bare mirror works too)
COMMIT=$(git -C "$SRC" rev-parse HEAD)
git -C "$SRC" archive HEAD data/mirror-mouse-example/CollectedData.csv \
    data/mirror-mouse-example/labeled-data LICENSE | tar -x -C "$OUT/source"
cp "$OUT/source/LICENSE" "$OUT/LICENSE"
"$PY" "$REPO_ROOT/tools/dataset_converters/dlc2yolo.py" \
    "$OUT/source/data/mirror-mouse-example/CollectedData.csv" --out-dir "$OUT" \
    --views _top _bot --drop obs_top obsHigh_bot obsLow_bot \
    --swap paw1LH:paw4RH paw2LF:paw3RF --sigma 0.05 --val-every 5 --class-name mouse
cat > "$OUT/SOURCE_NOTE.md" <<NOTE
# Mirror-mouse (Lightning Pose example data), YOLO keypoint layout

Source: https://github.com/paninski-lab/lightning-pose, commit $COMMIT,
data/mirror-mouse-example/ (CollectedData.csv + labeled-data/*.png). Licence: MIT (LICENSE, the
repository's; the data carries no other licence). Data from Warren et al., "A rapid whisker-based
decision underlying skilled locomotion in mice", eLife 2021, as packaged by Lightning Pose
(Biderman et al., Nature Methods 2024).

Converted by bench/prepare_mirror_mouse.sh (tools/dataset_converters/dlc2yolo.py): one instance
per view (side view = top of the frame, bottom view), 7 keypoints each (paw1LH, paw2LF, paw3RF,
paw4RH, tailBase, tailMid, nose), obstacle points left out, flip pairs LH/RH and LF/RF, sigma
0.05, boxes = keypoint box padded by 10 % of its longer side, every 5th frame in val.
NOTE
echo "wrote $OUT (data.yaml, metainfo.py, train/, val/, LICENSE, SOURCE_NOTE.md)"
