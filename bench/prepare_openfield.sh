#!/usr/bin/env bash
# The held-out check of the accuracy bench: DeepLabCut's open-field example, in the YOLO keypoint
# layout, with its licence and provenance beside it. Issue 10 keeps DeepLabCut's bundled examples
# out of the recipe study: a recipe is chosen on Tiger-Pose and mirror-mouse, then checked here
# unchanged, and nothing is tuned on this set's results.
#
#   bash bench/prepare_openfield.sh DEEPLABCUT_CHECKOUT [OUT_DIR]
#
# DEEPLABCUT_CHECKOUT: a git clone of https://github.com/DeepLabCut/DeepLabCut (LGPL-3.0; the
# example project sits in its repository, examples/openfield-Pranav-2018-10-30). Nothing of it is
# committed here. OUT_DIR defaults to bench_data/openfield (ignored by git).
#
# The data: 116 labelled 640x480 frames of one mouse in an open field, seen from above, 4 body
# parts (snout, left ear, right ear, tail base) labelled by one annotator (`Pranav`), some left
# unlabelled where hidden. Converted with tools/dataset_converters/dlc2yolo.py as a new user
# would, the issue's held-out protocol: one instance per frame, class `mouse`, a horizontal flip
# swaps the ears, OKS sigma 0.05 for every keypoint (the dataset defines none), boxes = the
# keypoints' box padded by 10 % of its longer side, every 5th frame in val: 92 train / 24 val.
set -euo pipefail
SRC=${1:?usage: bash bench/prepare_openfield.sh DEEPLABCUT_CHECKOUT [OUT_DIR]}
OUT=${2:-bench_data/openfield}
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}
PROJECT=examples/openfield-Pranav-2018-10-30
mkdir -p "$OUT/source"
OUT=$(cd "$OUT" && pwd)
# the example project and the licence at the checkout's HEAD (a bare mirror works too)
COMMIT=$(git -C "$SRC" rev-parse HEAD)
git -C "$SRC" archive HEAD "$PROJECT/labeled-data" "$PROJECT/config.yaml" LICENSE \
    | tar -x -C "$OUT/source"
cp "$OUT/source/LICENSE" "$OUT/LICENSE"
"$PY" "$REPO_ROOT/tools/dataset_converters/dlc2yolo.py" \
    "$OUT/source/$PROJECT/labeled-data/m4s1/CollectedData_Pranav.csv" --out-dir "$OUT" \
    --swap leftear:rightear --sigma 0.05 --val-every 5 --class-name mouse
cat > "$OUT/SOURCE_NOTE.md" <<NOTE
# Open-field mouse (DeepLabCut example project), YOLO keypoint layout

Source: https://github.com/DeepLabCut/DeepLabCut, commit $COMMIT,
$PROJECT/labeled-data/m4s1/ (CollectedData_Pranav.csv + img*.png). Licence: LGPL-3.0 (LICENSE,
the repository's; the example data carries no other licence). Data from Mathis et al.,
"DeepLabCut: markerless pose estimation of user-defined body parts with deep learning", Nature
Neuroscience 2018, as bundled with DeepLabCut (a subset of the paper's open-field data).

Converted by bench/prepare_openfield.sh (tools/dataset_converters/dlc2yolo.py): one instance per
frame, 4 keypoints (snout, leftear, rightear, tailbase), flip pair leftear/rightear, sigma 0.05,
boxes = keypoint box padded by 10 % of its longer side, every 5th frame in val. Held out of the
recipe study of issue 10.
NOTE
echo "wrote $OUT (data.yaml, metainfo.py, train/, val/, LICENSE, SOURCE_NOTE.md)"
