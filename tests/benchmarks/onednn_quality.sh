#!/bin/bash
# Quality of one seed's training with oneDNN off (float32, the settings of commit f125341), oneDNN on
# (float32, the default) and oneDNN on with mixed bfloat16, back to back (issue 25).
#
#   bash tests/benchmarks/onednn_quality.sh OUT_DIR [TASK...]     # TASK: mnist sentiment speech (default: all)
#
# Each run is `sensorium train` with the task's bundled config, shortened by EPOCHS_<TASK> (defaults:
# mnist 8, sentiment 4, speech 4; empty: the full recipe). OUT_DIR/quality.txt gets one line per run
# (exit code, wall seconds, load); each run directory's metrics.json has its test figures. Speech runs
# float32 only (bfloat16 does not speed up its LSTM loops, tests/benchmarks/training_utilisation.py).
# With SEEDS="1 2 ..." each seed runs oneDNN on in float32 and in mixed bfloat16 (`--seed S`; runs named
# TASK-on-f32-sS, TASK-on-bf16-sS), to tell bfloat16's effect from a seed's.
set -u
out=${1:?usage: onednn_quality.sh OUT_DIR [TASK...]}; shift
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
run() {  # name onednn mixed-precision task config [extra...]
  local name=$1 onednn=$2 mp=$3 task=$4 config=$5; shift 5
  rm -rf "${out:?}/$name"
  local start; start=$(date +%s)
  TF_ENABLE_ONEDNN_OPTS=$onednn sensorium train "$task" --config "$config" --mixed-precision "$mp" \
    --out "$out/$name" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "$name onednn=$onednn mixed_precision=$mp rc=$rc wall_s=$(( $(date +%s) - start )) load=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/quality.txt"
}
for t in "${@:-mnist sentiment speech}"; do
  for task_name in $t; do
    case $task_name in
      mnist) task=image; cfg=$root/assets/configs/mnist.json; epochs=${EPOCHS_MNIST-8};;
      sentiment) task=sentiment; cfg=$root/assets/configs/sentiment.json; epochs=${EPOCHS_SENTIMENT-4};;
      speech) task=speech; cfg=$root/assets/models/speech/config.json; epochs=${EPOCHS_SPEECH-4};;
      *) echo "unknown task $task_name (mnist, sentiment, speech)" >&2; exit 2;;
    esac
    extra=(); [ -n "$epochs" ] && extra=(--epochs "$epochs")
    if [ -n "${SEEDS:-}" ]; then
      for seed in $SEEDS; do
        run "$task_name-on-f32-s$seed" 1 off "$task" "$cfg" "${extra[@]}" --seed "$seed"
        run "$task_name-on-bf16-s$seed" 1 on "$task" "$cfg" "${extra[@]}" --seed "$seed"
      done
      continue
    fi
    run "$task_name-off-f32" 0 off "$task" "$cfg" "${extra[@]}"
    run "$task_name-on-f32" 1 off "$task" "$cfg" "${extra[@]}"
    [ "$task_name" != speech ] && run "$task_name-on-bf16" 1 on "$task" "$cfg" "${extra[@]}"
  done
done
