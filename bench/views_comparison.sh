#!/usr/bin/env bash
# What cached views buy (issue 14, item 5) on speaker-held-out noisy digits (L = 2 s, the
# speaker folds FOLDS of 5), the pretrained whisper-tiny.en teacher fine-tuned per fold,
# STUDENTS (default TC-ResNet8), SEEDS seeds, KD at lambda 0.25 from the "auto" attention:
#   a     clean clips, labels only, the old recipe (Adam, no weight decay)
#   b     clean clips, labels only, weight decay 1e-2 (the recipe of every later condition)
#   c-f   VIEWS cached views: c labels only, d + attention KD, e + logit KD, f + both
#   k1    KD without views (d, e, f at K = 1)
#   k8    c and f with 8 views
#   long  c and f trained LONG_EPOCHS epochs instead of 30
#   wide  c and f with the TC-ResNets WIDTH times wider (student capacity)
#   widelong  c and f both wider and trained long
#   narrow  f with an attention head HEAD_DIM wide instead of 64 (what KD costs to train)
# Each condition is one `tkd run` folder, WORK/runs/foldK/STUDENTS/CONDITION, which
# bench/views_result.py pools. CONDITIONS, VIEW_KD (the KD modes of c-f), FOLDS and SEEDS
# cut the grid for time. Resume-safe: folds, teachers, caches and finished runs are reused.
#   bash bench/views_comparison.sh [WORK_DIR]   (TC-ResNet8, 5 folds, 3 seeds: about 2 h on
#                                                one core; Att-RNN runs take 6x longer)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-bench/out/views-cpu}
SHARED=${TKD_SHARED_DATA:-../shared/data}
FOLDS=${FOLDS:-0 1 2 3 4} VIEWS=${VIEWS:-4} SEEDS=${SEEDS:-3} LONG_EPOCHS=${LONG_EPOCHS:-100}
WIDTH=${WIDTH:-2} HEAD_DIM=${HEAD_DIM:-16}
STUDENTS=${STUDENTS:-tc-resnet8} CONDITIONS=${CONDITIONS:-a b c-f k1 k8 long wide}
VIEW_KD=${VIEW_KD:-none,attention,logits,both}
for fold in $FOLDS; do
  data=$WORK/data/fold$fold teacher=$WORK/teachers/fold$fold
  [ -f "$data/manifest.jsonl" ] || python cli.py data noisy-digits \
      --fsdd "$SHARED/fsdd/recordings" --noise "$SHARED/speech_commands_noise" \
      --length 2 --fold "$fold" --folds 5 --out "$data"
  [ -f "$teacher/metrics.json" ] || python cli.py finetune-teacher --data "$data" \
      --out "$teacher" --init whisper-tiny.en --remix
  sweep() {  # sweep CONDITION [run options...]: recipe b unless the options say otherwise
    local name=$1; shift
    python cli.py run --data "$data" --teacher "$teacher" --students "$STUDENTS" \
        --seeds "$SEEDS" --kd-weights 0.25 --teacher-attention auto --weight-decay 1e-2 \
        --cache "$WORK/cache" --out "$WORK/runs/fold$fold/${STUDENTS//,/-}/$name" "$@" \
        > /dev/null
  }
  for condition in $CONDITIONS; do
    case $condition in
      a) sweep a --kd none --weight-decay 0 ;;
      b) sweep b --kd none ;;
      c-f) sweep c-f --views "$VIEWS" --kd "$VIEW_KD" ;;
      k1) sweep k1 --kd attention,logits,both ;;
      k8) sweep k8 --views 8 --kd none,both ;;
      long) sweep long --views "$VIEWS" --kd none,both --epochs "$LONG_EPOCHS" ;;
      wide) sweep wide --views "$VIEWS" --kd none,both --width "$WIDTH" ;;
      narrow) sweep narrow --views "$VIEWS" --kd both --attention-dim "$HEAD_DIM" ;;
      widelong) sweep widelong --views "$VIEWS" --kd none,both --width "$WIDTH" \
          --epochs "$LONG_EPOCHS" ;;
      *) echo "unknown condition $condition" >&2; exit 2 ;;
    esac
  done
done
