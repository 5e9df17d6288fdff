#!/usr/bin/env bash
# Regenerates the paper-style tables on real audio (../shared/data): noisy spoken digits at
# L = 2, 4, 6, 8 s (single-label) and a multi-label variant; for each, a from-scratch
# Whisper-encoder teacher, one teacher cache, and every student w/o and w/ attention KD
# (lambda chosen per student on valid), 3 seeds; plus rollout vs layer-1 teacher attention.
# The data is split by speaker (fold 0 of 5) with disjoint noise regions, the recipe's default.
#
#   bench/reproduce.sh            # full protocol, one GPU (not yet run)
#   PROTOCOL=cpu bench/reproduce.sh   # the reduced protocol that fits a 2-core CPU
#
# Everything lands under $OUT (default bench/out/reproduce); reruns reuse what is finished.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SHARED=${SHARED:-../shared/data}
OUT=${OUT:-bench/out/reproduce}
PROTOCOL=${PROTOCOL:-gpu}
SNR=${SNR:--5,5}

if [ "$PROTOCOL" = gpu ]; then
  LENGTHS="2 4 6 8"; TEACHER=whisper-6l; TEACHER_EPOCHS=60; TEACHER_BATCH=48; TEACHER_LR=3e-4
  STUDENTS=lstm-p,tc-resnet8,crnn,att-rnn,mhatt-rnn; WEIGHTS=0.1,0.25,0.5; SEEDS=3
  EPOCHS=40; JOBS=4; DEVICE=cuda; MULTI=1
else
  LENGTHS="2"; TEACHER=whisper-tiny; TEACHER_EPOCHS=50; TEACHER_BATCH=32; TEACHER_LR=1e-3
  STUDENTS=att-rnn,tc-resnet8; WEIGHTS=0.5; SEEDS=3
  EPOCHS=20; JOBS=1; DEVICE=cpu; MULTI=0
fi

start=$(date +%s)
mkdir -p "$OUT"
run_length() {  # $1 = name, $2 = length, extra args for the preparer after
  local name=$1 length=$2; shift 2
  local data=$OUT/data/$name teacher=$OUT/teachers/$name runs=$OUT/runs/$name
  [ -f "$data/manifest.jsonl" ] || $PY cli.py data noisy-digits --fsdd "$SHARED/fsdd/recordings" \
      --noise "$SHARED/speech_commands_noise" --length "$length" --snr "$SNR" --out "$data" "$@"
  [ -f "$teacher/metrics.json" ] || $PY cli.py finetune-teacher --data "$data" --out "$teacher" \
      --config "$TEACHER" --remix --epochs "$TEACHER_EPOCHS" --batch-size "$TEACHER_BATCH" \
      --lr "$TEACHER_LR" --patience 0 --device "$DEVICE"
  # rollout (the paper's) and the first layer's own attention: which transfers better here.
  $PY cli.py run --data "$data" --teacher "$teacher" --students "$STUDENTS" --kd none,attention \
      --kd-weights "$WEIGHTS" --teacher-attention rollout,layer:1 --seeds "$SEEDS" \
      --epochs "$EPOCHS" --jobs "$JOBS" --device "$DEVICE" --cache "$OUT/cache" --out "$runs"
}
for L in $LENGTHS; do run_length "L$L" "$L"; done
[ "$MULTI" = 1 ] && run_length multi-L4 4 --multi-label --max-events 3
echo "{\"protocol\": \"$PROTOCOL\", \"wall_seconds\": $(( $(date +%s) - start ))}" > "$OUT/wall.json"
$PY bench/collect_results.py "$OUT"
