#!/usr/bin/env bash
# What cached views buy (issue 14, item 5) on one speaker-held-out fold of noisy digits
# (L = 2 s, fold FOLD of 5), the pretrained whisper-tiny.en teacher fine-tuned on the fold,
# STUDENTS (default TC-ResNet8), SEEDS seeds, KD at lambda 0.25 from the "auto" attention:
#   a  clean clips, labels only, the old recipe (Adam, no weight decay)
#   b  clean clips, labels only, weight decay 1e-2
#   c  VIEWS cached views, labels only            (recipe b from here on)
#   d  views + attention KD    e  views + logit KD    f  views + both
#   long: c and f trained LONG_EPOCHS epochs instead of 30
# Every condition is one `tkd run` folder, WORK/runs/STUDENTS/CONDITION; bench/views_result.py
# pools them. CONDITIONS, VIEW_KD (the KD modes of c-f) and SEEDS cut the grid for time.
# Resume-safe: the fold, teacher, caches and finished runs are reused.
#   bash bench/views_comparison.sh [WORK_DIR]     (TC-ResNet8, 3 seeds: about 2 h on one core)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-bench/out/views-cpu}
SHARED=${TKD_SHARED_DATA:-../shared/data}
FOLD=${FOLD:-0} VIEWS=${VIEWS:-4} SEEDS=${SEEDS:-3} LONG_EPOCHS=${LONG_EPOCHS:-100}
STUDENTS=${STUDENTS:-tc-resnet8} CONDITIONS=${CONDITIONS:-a b c-f long}
VIEW_KD=${VIEW_KD:-none,attention,logits,both}  # the KD modes of c-f
data=$WORK/data/fold$FOLD teacher=$WORK/teachers/fold$FOLD
[ -f "$data/manifest.jsonl" ] || python cli.py data noisy-digits \
    --fsdd "$SHARED/fsdd/recordings" --noise "$SHARED/speech_commands_noise" \
    --length 2 --fold "$FOLD" --folds 5 --out "$data"
[ -f "$teacher/metrics.json" ] || python cli.py finetune-teacher --data "$data" \
    --out "$teacher" --init whisper-tiny.en --remix
sweep() {  # sweep CONDITION [run options...]
  local name=$1; shift
  python cli.py run --data "$data" --teacher "$teacher" --students "$STUDENTS" \
      --seeds "$SEEDS" --kd-weights 0.25 --teacher-attention auto \
      --cache "$WORK/cache" --out "$WORK/runs/${STUDENTS//,/-}/$name" "$@" > /dev/null
}
for condition in $CONDITIONS; do
  case $condition in
    a) sweep a --kd none --weight-decay 0 ;;
    b) sweep b --kd none --weight-decay 1e-2 ;;
    c-f) sweep c-f --views "$VIEWS" --weight-decay 1e-2 --kd "$VIEW_KD" ;;
    long) sweep long --views "$VIEWS" --weight-decay 1e-2 --kd none,both --epochs "$LONG_EPOCHS" ;;
    *) echo "unknown condition $condition" >&2; exit 2 ;;
  esac
done
