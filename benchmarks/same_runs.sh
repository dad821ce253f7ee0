#!/usr/bin/env bash
# Eight short phantoms runs (U-Net, U-Net++, CDMA, Mean Teacher, URPC, MSGA, the weak pipeline with a U-Net and
# with WSR) into OUT; run it on two commits and compare the trees with compare_runs.py: the same seed must give
# the same metrics.csv, per-case metrics, summaries and weak.json.
#   bash benchmarks/same_runs.sh /tmp/before   (on the old commit)   then   .../same_runs.sh /tmp/after
#   python benchmarks/compare_runs.py /tmp/before /tmp/after
set -euo pipefail
OUT=$(realpath -m "$1")
cd "$(dirname "$0")/.."
M=".venv/bin/medseg"
COMMON="data.source.count=96 data.size=48 data.source.size=48 train.epochs=10 data.cache_dir=$OUT/cache"
CLASSIFIER="weak.classifier={name: classifier, features: [8,16,32,64], pool: attention}"
$M train configs/phantoms-unet.yaml $COMMON --run-dir "$OUT/unet" --quiet
$M train configs/phantoms-unet.yaml $COMMON model.name=unetpp "model.features=[8,16,32,64]" --run-dir "$OUT/unetpp" --quiet
$M train configs/phantoms-unet.yaml $COMMON model.name=mtnet "model.features=[8,16,32,64]" method.name=cdma \
  data.labeled_ratio=0.3 --run-dir "$OUT/cdma" --quiet
$M train configs/phantoms-unet.yaml $COMMON method.name=mean_teacher data.labeled_ratio=0.3 --run-dir "$OUT/mt" --quiet
$M train configs/phantoms-unet.yaml $COMMON model.pyramid=2 method.name=urpc data.labeled_ratio=0.3 \
  --run-dir "$OUT/urpc" --quiet
$M train configs/phantoms-unet.yaml $COMMON model.name=msga "model.features=[8,16,32,64]" model.width=8 \
  train.channels_last=false --run-dir "$OUT/msga" --quiet
$M train configs/phantoms-unet.yaml $COMMON supervision=image-labels weak.epochs=2 "$CLASSIFIER" --run-dir "$OUT/weak" --quiet
$M train configs/phantoms-unet.yaml $COMMON supervision=image-labels weak.epochs=2 weak.stage2=wsr "$CLASSIFIER" \
  --run-dir "$OUT/wsr" --quiet
